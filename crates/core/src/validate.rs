//! Validation that names the field and the reason.
//!
//! Three layers: `parse_input` turns what a member typed into a field value; `check_value`
//! checks a JSON value against a field's type (records arriving as JSON files); `record` checks
//! the rules that span fields (end before start, month within quarter …). `on_submit` adds what
//! must be filled before a record leaves its author.

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::Value;

use crate::domain::*;
use crate::error::{Reason, ValidationError};
use crate::schema::{FieldKind, FieldSpec, ValueType};
use crate::time;

/// Longest single-line value.
pub const MAX_LINE: usize = 200;
/// Longest free text.
pub const MAX_TEXT: usize = 20_000;
/// Longest visit.
pub const MAX_VISIT_DAYS: i64 = 7;
/// The media types a photo original may have.
pub const PHOTO_MIME_TYPES: &[&str] = &["image/jpeg", "image/png", "image/webp"];
/// Largest photo original a reference may claim (bytes).
pub const MAX_PHOTO_BYTES: u64 = 256 << 20;
/// Longest side a photo reference may claim (pixels).
pub const MAX_PHOTO_SIDE: u32 = 65_535;

fn err(field: &str, reason: Reason) -> ValidationError {
    ValidationError::new(field, reason)
}

/// Whether `s` is a valid id: 1–64 of `[A-Za-z0-9_-]`.
pub fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Parses a date-time as members type it: `2026-05-19T09:30`, `2026-05-19 09:30`, with or without
/// seconds.
pub fn parse_datetime(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    [
        time::STORED_FORMAT,
        "%Y-%m-%dT%H:%M",
        time::SECOND_FORMAT,
        time::MINUTE_FORMAT,
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
}

pub fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), time::DATE_FORMAT).ok()
}

fn vocab<T: Copy>(
    field: &str,
    input: &str,
    parse: fn(&str) -> Option<T>,
    code: fn(T) -> &'static str,
    what: &'static str,
    choices: fn() -> String,
) -> Result<Value, ValidationError> {
    parse(input)
        .map(|v| Value::String(code(v).into()))
        .ok_or_else(|| {
            err(
                field,
                Reason::UnknownValue {
                    what,
                    value: input.trim().into(),
                    choices: choices(),
                },
            )
        })
}

/// Turns typed input into the JSON value of one field (one element, for sets and logs).
/// An empty input clears an optional field.
pub fn parse_input(spec: &FieldSpec, input: &str) -> Result<Value, ValidationError> {
    let name = spec.name;
    let t = input.trim();
    let v = match spec.ty {
        ValueType::Str | ValueType::OptStr => Value::String(input.to_string()),
        ValueType::Id => Value::String(t.to_string()),
        ValueType::OptId if t.is_empty() => Value::Null,
        ValueType::OptId => Value::String(t.to_string()),
        ValueType::Int => {
            let n: i64 = t.parse().map_err(|_| {
                err(
                    name,
                    Reason::BadFormat {
                        value: t.into(),
                        expected: "integer",
                    },
                )
            })?;
            Value::from(n)
        }
        ValueType::Date => {
            let d = parse_date(t).ok_or_else(|| {
                err(
                    name,
                    Reason::BadFormat {
                        value: t.into(),
                        expected: "date",
                    },
                )
            })?;
            Value::String(d.to_string())
        }
        ValueType::DateTime => {
            let d = parse_datetime(t).ok_or_else(|| {
                err(
                    name,
                    Reason::BadFormat {
                        value: t.into(),
                        expected: "date and time",
                    },
                )
            })?;
            serde_json::to_value(d).expect("dates serialize")
        }
        ValueType::Gps if t.is_empty() => Value::Null,
        ValueType::Gps => {
            let g = Gps::parse(t).ok_or_else(|| {
                err(
                    name,
                    Reason::BadFormat {
                        value: t.into(),
                        expected: "GPS fix",
                    },
                )
            })?;
            serde_json::to_value(g).expect("gps serializes")
        }
        ValueType::TargetKind => vocab(
            name,
            t,
            TargetKind::parse,
            TargetKind::code,
            TargetKind::WHAT,
            TargetKind::choices,
        )?,
        ValueType::ActivityType => vocab(
            name,
            t,
            ActivityType::parse,
            ActivityType::code,
            ActivityType::WHAT,
            ActivityType::choices,
        )?,
        ValueType::OpinionKind => vocab(
            name,
            t,
            OpinionKind::parse,
            OpinionKind::code,
            OpinionKind::WHAT,
            OpinionKind::choices,
        )?,
        ValueType::Urgency => vocab(
            name,
            t,
            Urgency::parse,
            Urgency::code,
            Urgency::WHAT,
            Urgency::choices,
        )?,
        ValueType::ChapterLevel => vocab(
            name,
            t,
            ChapterLevel::parse,
            ChapterLevel::code,
            ChapterLevel::WHAT,
            ChapterLevel::choices,
        )?,
        ValueType::Bool => match t {
            "" | "否" | "false" | "no" | "0" => Value::Bool(false),
            "是" | "true" | "yes" | "1" => Value::Bool(true),
            _ => {
                return Err(err(
                    name,
                    Reason::BadFormat {
                        value: t.into(),
                        expected: "yes or no",
                    },
                ));
            }
        },
        ValueType::Photo | ValueType::Assistance => {
            // Structured elements are given as JSON.
            serde_json::from_str(t).map_err(|_| {
                err(
                    name,
                    Reason::BadFormat {
                        value: t.into(),
                        expected: if spec.ty == ValueType::Photo {
                            "photo"
                        } else {
                            "assistance entry"
                        },
                    },
                )
            })?
        }
    };
    check_element(spec, &v)?;
    Ok(v)
}

fn check_line(field: &str, s: &str, max: usize) -> Result<(), ValidationError> {
    if s.chars().count() > max {
        return Err(err(field, Reason::TooLong { max }));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(err(field, Reason::ControlCharacter));
    }
    Ok(())
}

/// Checks one element (or the whole value, for scalars and text) against the field's type.
pub fn check_element(spec: &FieldSpec, v: &Value) -> Result<(), ValidationError> {
    let name = spec.name;
    let bad = |expected: &'static str| {
        Err(err(
            name,
            Reason::BadFormat {
                value: short(v),
                expected,
            },
        ))
    };
    let max = if spec.kind == FieldKind::Text {
        MAX_TEXT
    } else {
        MAX_LINE
    };
    match (spec.ty, v) {
        (ValueType::Str, Value::String(s)) if s.trim().is_empty() => Err(err(name, Reason::Empty)),
        (ValueType::Str | ValueType::OptStr, Value::String(s)) => check_line(name, s, max),
        (ValueType::OptStr | ValueType::OptId | ValueType::Gps, Value::Null) => Ok(()),
        (ValueType::Str | ValueType::OptStr, _) => bad("string"),
        (ValueType::Id | ValueType::OptId, Value::String(s)) if s.is_empty() => {
            Err(err(name, Reason::Empty))
        }
        (ValueType::Id | ValueType::OptId, Value::String(s)) if is_id(s) => Ok(()),
        (ValueType::Id | ValueType::OptId, _) => bad("id"),
        (ValueType::Bool, Value::Bool(_) | Value::Null) => Ok(()),
        (ValueType::Bool, _) => bad("yes or no"),
        (ValueType::Int, Value::Number(n)) if n.is_i64() => Ok(()),
        (ValueType::Int, _) => bad("integer"),
        (ValueType::Date, Value::String(s)) if parse_date(s).is_some() => Ok(()),
        (ValueType::Date, _) => bad("date"),
        (ValueType::DateTime, Value::String(s)) if parse_datetime(s).is_some() => Ok(()),
        (ValueType::DateTime, _) => bad("date and time"),
        (ValueType::Gps, v) => match v
            .as_str()
            .map_or_else(|| serde_json::from_value::<Gps>(v.clone()).ok(), Gps::parse)
            .ok_or(())
        {
            Ok(g) if !(-90.0..=90.0).contains(&g.lat) => Err(err(
                name,
                Reason::OutOfRange {
                    value: g.lat.to_string(),
                    min: "-90".into(),
                    max: "90".into(),
                },
            )),
            Ok(g) if !(-180.0..=180.0).contains(&g.lon) => Err(err(
                name,
                Reason::OutOfRange {
                    value: g.lon.to_string(),
                    min: "-180".into(),
                    max: "180".into(),
                },
            )),
            Ok(_) => Ok(()),
            Err(_) => bad("GPS fix"),
        },
        (ValueType::TargetKind, v) => check_vocab(
            name,
            v,
            TargetKind::parse,
            TargetKind::WHAT,
            TargetKind::choices,
        ),
        (ValueType::ActivityType, v) => check_vocab(
            name,
            v,
            ActivityType::parse,
            ActivityType::WHAT,
            ActivityType::choices,
        ),
        (ValueType::OpinionKind, v) => check_vocab(
            name,
            v,
            OpinionKind::parse,
            OpinionKind::WHAT,
            OpinionKind::choices,
        ),
        (ValueType::Urgency, v) => {
            check_vocab(name, v, Urgency::parse, Urgency::WHAT, Urgency::choices)
        }
        (ValueType::ChapterLevel, v) => check_vocab(
            name,
            v,
            ChapterLevel::parse,
            ChapterLevel::WHAT,
            ChapterLevel::choices,
        ),
        (ValueType::Photo, v) => match serde_json::from_value::<PhotoRef>(v.clone()) {
            Ok(p) => check_photo(name, &p),
            _ => bad("photo"),
        },
        (ValueType::Assistance, v) => match serde_json::from_value::<AssistanceEntry>(v.clone()) {
            Ok(a) if is_id(&a.member) && !a.action.trim().is_empty() => {
                check_line(name, &a.action, MAX_LINE)
            }
            _ => bad("assistance entry"),
        },
    }
}

/// Whether `s` is a photo's content address: a SHA-256 as 64 lowercase hex digits.
pub fn is_photo_hash(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A photo reference: its hash, media type, sizes, place and caption (issue 10: the console
/// builds paths and content types from these, so nothing else may pass).
fn check_photo(field: &str, p: &PhotoRef) -> Result<(), ValidationError> {
    if !is_photo_hash(&p.hash) {
        return Err(err(
            field,
            Reason::BadFormat {
                value: short(&Value::String(p.hash.clone())),
                expected: "photo hash",
            },
        ));
    }
    if !p.mime.is_empty() && !PHOTO_MIME_TYPES.contains(&p.mime.as_str()) {
        return Err(err(
            field,
            Reason::UnknownValue {
                what: "photo type",
                value: short(&Value::String(p.mime.clone())),
                choices: PHOTO_MIME_TYPES.join(", "),
            },
        ));
    }
    let range = |value: u64, max: u64| {
        Err(err(
            field,
            Reason::OutOfRange {
                value: value.to_string(),
                min: "0".into(),
                max: max.to_string(),
            },
        ))
    };
    if p.bytes > MAX_PHOTO_BYTES {
        return range(p.bytes, MAX_PHOTO_BYTES);
    }
    for side in [p.width, p.height] {
        if side > MAX_PHOTO_SIDE {
            return range(side.into(), MAX_PHOTO_SIDE.into());
        }
    }
    if let Some(g) = &p.gps
        && (!(-90.0..=90.0).contains(&g.lat) || !(-180.0..=180.0).contains(&g.lon))
    {
        return Err(err(
            field,
            Reason::OutOfRange {
                value: format!("{},{}", g.lat, g.lon),
                min: "-90,-180".into(),
                max: "90,180".into(),
            },
        ));
    }
    check_line(field, &p.caption, MAX_LINE)
}

fn check_vocab<T>(
    field: &str,
    v: &Value,
    parse: fn(&str) -> Option<T>,
    what: &'static str,
    choices: fn() -> String,
) -> Result<(), ValidationError> {
    match v.as_str().and_then(parse) {
        Some(_) => Ok(()),
        None => Err(err(
            field,
            Reason::UnknownValue {
                what,
                value: short(v),
                choices: choices(),
            },
        )),
    }
}

fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > 40 {
        s.chars().take(40).collect::<String>() + "…"
    } else {
        s
    }
}

/// The canonical form of a checked value: vocabulary labels become codes, date-times and dates
/// their ISO form, a GPS fix typed as `lat,lon` an object. Call after `check_element`.
pub fn normalize(spec: &FieldSpec, v: &Value) -> Value {
    let Value::String(s) = v else {
        return v.clone();
    };
    let code = |c: Option<&'static str>| {
        c.map(|c| Value::String(c.into()))
            .unwrap_or_else(|| v.clone())
    };
    match spec.ty {
        ValueType::TargetKind => code(TargetKind::parse(s).map(TargetKind::code)),
        ValueType::ActivityType => code(ActivityType::parse(s).map(ActivityType::code)),
        ValueType::OpinionKind => code(OpinionKind::parse(s).map(OpinionKind::code)),
        ValueType::Urgency => code(Urgency::parse(s).map(Urgency::code)),
        ValueType::ChapterLevel => code(ChapterLevel::parse(s).map(ChapterLevel::code)),
        ValueType::DateTime => parse_datetime(s)
            .map(|d| Value::String(time::stored(d)))
            .unwrap_or_else(|| v.clone()),
        ValueType::Date => parse_date(s)
            .map(|d| Value::String(d.to_string()))
            .unwrap_or_else(|| v.clone()),
        ValueType::Gps => Gps::parse(s)
            .map(|g| serde_json::to_value(g).expect("gps serializes"))
            .unwrap_or_else(|| v.clone()),
        ValueType::Id | ValueType::OptId => Value::String(s.trim().to_string()),
        _ => v.clone(),
    }
}

/// Checks every field of a record given as JSON and puts each value in its canonical form
/// (see [`normalize`]).
pub fn normalize_fields(
    kind: RecordKind,
    fields: &mut serde_json::Map<String, Value>,
) -> Result<(), ValidationError> {
    check_fields(kind, fields)?;
    for spec in crate::schema::fields(kind) {
        if let Some(v) = fields.get_mut(spec.name) {
            let new = match &*v {
                Value::Array(items) => {
                    Value::Array(items.iter().map(|i| normalize(spec, i)).collect())
                }
                other => normalize(spec, other),
            };
            *v = new;
        }
    }
    Ok(())
}

/// Checks every field of a record given as JSON (its fields by name, no `kind`), so that the
/// error names the field rather than a position in the text.
pub fn check_fields(
    kind: RecordKind,
    fields: &serde_json::Map<String, Value>,
) -> Result<(), ValidationError> {
    for key in fields.keys() {
        if key != "kind" && crate::schema::fields(kind).iter().all(|f| f.name != key) {
            return Err(err(
                key,
                Reason::UnknownField {
                    choices: crate::schema::field_choices(kind),
                },
            ));
        }
    }
    for spec in crate::schema::fields(kind) {
        let v = fields.get(spec.name).unwrap_or(&Value::Null);
        match spec.kind {
            FieldKind::Set | FieldKind::KeyedSet | FieldKind::Log => match v {
                Value::Null => {}
                Value::Array(items) => {
                    for item in items {
                        check_element(spec, item)?;
                    }
                }
                _ => {
                    return Err(err(
                        spec.name,
                        Reason::BadFormat {
                            value: short(v),
                            expected: "list",
                        },
                    ));
                }
            },
            _ => check_element(spec, v)?,
        }
    }
    Ok(())
}

/// The rules that span fields.
pub fn record(data: &RecordData) -> Result<(), ValidationError> {
    match data {
        RecordData::Visit(v) => {
            if v.end < v.start {
                return Err(err("end", Reason::EndBeforeStart));
            }
            if (v.end - v.start).num_days() >= MAX_VISIT_DAYS {
                return Err(err(
                    "end",
                    Reason::TooLongDuration {
                        max_days: MAX_VISIT_DAYS,
                    },
                ));
            }
        }
        RecordData::Household(h) if !(1..=50).contains(&h.size) => {
            return Err(err(
                "size",
                Reason::OutOfRange {
                    value: h.size.to_string(),
                    min: "1".into(),
                    max: "50".into(),
                },
            ));
        }
        RecordData::Plan(p) => {
            if !(2000..=2100).contains(&p.year) {
                return Err(err(
                    "year",
                    Reason::OutOfRange {
                        value: p.year.to_string(),
                        min: "2000".into(),
                        max: "2100".into(),
                    },
                ));
            }
            if !(1..=4).contains(&p.quarter) {
                return Err(err(
                    "quarter",
                    Reason::OutOfRange {
                        value: p.quarter.to_string(),
                        min: "1".into(),
                        max: "4".into(),
                    },
                ));
            }
            if !(1..=12).contains(&p.month) {
                return Err(err(
                    "month",
                    Reason::OutOfRange {
                        value: p.month.to_string(),
                        min: "1".into(),
                        max: "12".into(),
                    },
                ));
            }
            if (p.month - 1) / 3 + 1 != p.quarter {
                return Err(err(
                    "month",
                    Reason::MonthNotInQuarter {
                        month: p.month,
                        quarter: p.quarter,
                    },
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// What must be filled before a record is submitted.
pub fn on_submit(data: &RecordData) -> Result<(), ValidationError> {
    match data {
        RecordData::Visit(v) => {
            if v.summary.trim().is_empty() {
                return Err(err("summary", Reason::EmptyOnSubmit { what: "summary" }));
            }
            if v.participants.is_empty() {
                return Err(err(
                    "participants",
                    Reason::EmptyOnSubmit {
                        what: "participant",
                    },
                ));
            }
        }
        RecordData::Opinion(o) if o.text.trim().is_empty() => {
            return Err(err("text", Reason::EmptyOnSubmit { what: "text" }));
        }
        _ => {}
    }
    Ok(())
}

pub use crate::record_check::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::field;
    use serde_json::json;

    /// (kind, field, input, Ok(expected value) or Err(reason check))
    fn check(
        kind: RecordKind,
        name: &str,
        input: &str,
        expect: Result<Value, fn(&Reason) -> bool>,
    ) {
        let spec = field(kind, name).unwrap();
        match (parse_input(spec, input), expect) {
            (Ok(v), Ok(e)) => assert_eq!(v, e, "{name} {input:?}"),
            (Err(err), Err(pred)) => {
                assert_eq!(err.field, spec.name);
                assert!(pred(&err.reason), "{name} {input:?}: {:?}", err.reason);
            }
            (got, _) => panic!("{name} {input:?}: unexpected {got:?}"),
        }
    }

    #[test]
    fn parses_what_members_type() {
        use RecordKind::*;
        check(
            Visit,
            "activity_type",
            "调研座谈",
            Ok(json!("research_symposium")),
        );
        check(
            Visit,
            "activity_type",
            " consultation ",
            Ok(json!("consultation")),
        );
        check(
            Visit,
            "activity_type",
            "跳舞",
            Err(|r| matches!(r, Reason::UnknownValue { .. })),
        );
        check(
            Visit,
            "start",
            "2026-05-19 09:30",
            Ok(json!("2026-05-19T09:30:00")),
        );
        check(
            Visit,
            "start",
            "19/05/2026",
            Err(|r| matches!(r, Reason::BadFormat { .. })),
        );
        check(
            Visit,
            "gps",
            "30.9, 113.9",
            Ok(json!({"lat": 30.9, "lon": 113.9})),
        );
        check(
            Visit,
            "gps",
            "91,0",
            Err(|r| matches!(r, Reason::OutOfRange { .. })),
        );
        check(Visit, "gps", "", Ok(Value::Null));
        check(
            Visit,
            "participants",
            "member-0001",
            Ok(json!("member-0001")),
        );
        check(
            Visit,
            "participants",
            "张三",
            Err(|r| matches!(r, Reason::BadFormat { .. })),
        );
        check(Visit, "title", "", Err(|r| *r == Reason::Empty));
        check(
            Visit,
            "title",
            &"长".repeat(MAX_LINE + 1),
            Err(|r| matches!(r, Reason::TooLong { .. })),
        );
        check(Opinion, "source", "", Ok(json!("")));
        check(
            Opinion,
            "recorded_on",
            "2026-02-30",
            Err(|r| matches!(r, Reason::BadFormat { .. })),
        );
        check(Opinion, "visit", " ", Ok(Value::Null));
        check(
            Household,
            "size",
            "三",
            Err(|r| matches!(r, Reason::BadFormat { .. })),
        );
        check(
            Household,
            "log",
            r#"{"date":"2026-01-02","member":"m-1","action":"送米"}"#,
            Ok(json!({"date":"2026-01-02","member":"m-1","action":"送米"})),
        );
        check(
            Household,
            "log",
            r#"{"date":"2026-01-02"}"#,
            Err(|r| matches!(r, Reason::BadFormat { .. })),
        );
        check(Plan, "quarter", "2", Ok(json!(2)));
    }

    #[test]
    fn ids() {
        assert!(is_id("member-0001") && is_id("a_b") && is_id(&"x".repeat(64)));
        assert!(!is_id("") && !is_id("a b") && !is_id("成员") && !is_id(&"x".repeat(65)));
    }
}
