//! Records and edits from what a person typed, field by field: each value parsed and checked by
//! the schema, so the CLI and the phone bridge build records and edits the same way.

use chrono::{Months, NaiveDate};
use serde_json::{Map, Value, json};

use crate::doc::Edit;
use crate::domain::{RecordData, RecordKind};
use crate::error::{Reason, ValidationError};
use crate::schema::{self, FieldKind, FieldSpec};
use crate::validate;

/// A field by its name or Chinese label; an unknown one is an error listing the kind's fields.
pub fn field_spec(kind: RecordKind, field: &str) -> Result<&'static FieldSpec, ValidationError> {
    schema::field(kind, field).ok_or_else(|| {
        ValidationError::new(
            field,
            Reason::UnknownField {
                choices: schema::field_choices(kind),
            },
        )
    })
}

/// Parses `input` for the field `name` into `fields`.
pub fn put(
    kind: RecordKind,
    fields: &mut Map<String, Value>,
    name: &str,
    input: &str,
) -> Result<(), ValidationError> {
    let spec = field_spec(kind, name)?;
    fields.insert(spec.name.into(), validate::parse_input(spec, input)?);
    Ok(())
}

/// Parses each of `inputs` as one element of the set or log `name` into `fields`.
pub fn put_list(
    kind: RecordKind,
    fields: &mut Map<String, Value>,
    name: &str,
    inputs: &[String],
) -> Result<(), ValidationError> {
    let spec = field_spec(kind, name)?;
    let items = inputs
        .iter()
        .map(|i| validate::parse_input(spec, i))
        .collect::<Result<Vec<_>, _>>()?;
    fields.insert(spec.name.into(), Value::Array(items));
    Ok(())
}

/// What a member's own record defaults to when a field is left out: the member takes part in
/// the visit, is paired with the household, owns the plan item; an opinion is recorded `today`.
pub fn fill_defaults(
    kind: RecordKind,
    fields: &mut Map<String, Value>,
    member: &str,
    today: NaiveDate,
) {
    let empty = |v: Option<&Value>| match v {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::String(s)) => s.trim().is_empty(),
        _ => false,
    };
    let (name, value) = match kind {
        RecordKind::Visit => ("participants", json!([member])),
        RecordKind::Household => ("assisting_members", json!([member])),
        RecordKind::Plan => ("owner", json!(member)),
        RecordKind::Opinion => ("recorded_on", json!(today.to_string())),
        _ => return,
    };
    if empty(fields.get(name)) {
        fields.insert(name.into(), value);
    }
}

/// Builds a record from its fields by name (no `kind`), filling absent sets, logs and texts with
/// empty ones and checking each field so errors name it, then the rules that span fields.
pub fn build(
    kind: RecordKind,
    mut fields: Map<String, Value>,
) -> Result<RecordData, ValidationError> {
    fields.remove("kind");
    for spec in schema::fields(kind) {
        if !fields.contains_key(spec.name) {
            let empty = match spec.kind {
                FieldKind::Set | FieldKind::KeyedSet | FieldKind::Log => json!([]),
                FieldKind::Text => json!(""),
                _ => Value::Null,
            };
            fields.insert(spec.name.into(), empty);
        }
    }
    validate::normalize_fields(kind, &mut fields)?;
    fields.insert("kind".into(), json!(kind.code()));
    let data: RecordData = serde_json::from_value(Value::Object(fields)).map_err(|_| {
        ValidationError::new(
            "record",
            Reason::BadFormat {
                value: kind.code().into(),
                expected: "record",
            },
        )
    })?;
    validate::record(&data)?;
    Ok(data)
}

/// How an edit applies to its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditMode {
    /// Replace the value (scalars, texts, structured values).
    Set,
    /// Add an element to a set.
    Add,
    /// Remove an element from a set (by value, or by hash for photos).
    Remove,
    /// Append an entry to a log.
    Append,
}

/// Parses typed input into an edit of one field, refusing a mode the field's storage does not
/// have (setting a set, adding to a scalar).
pub fn parse_edit(
    kind: RecordKind,
    field: &str,
    value: &str,
    mode: EditMode,
) -> Result<Edit, ValidationError> {
    let spec = field_spec(kind, field)?;
    let name = spec.name.to_string();
    let wrong = |kind: &'static str, how: &'static str| {
        ValidationError::new(spec.name, Reason::WrongEdit { kind, how })
    };
    Ok(match (spec.kind, mode) {
        (FieldKind::Set | FieldKind::KeyedSet, EditMode::Add) => Edit::Add {
            field: name,
            element: validate::parse_input(spec, value)?,
        },
        (FieldKind::Set | FieldKind::KeyedSet, EditMode::Remove) => Edit::Remove {
            field: name,
            key: value.trim().to_string(),
        },
        (FieldKind::Set | FieldKind::KeyedSet, _) => {
            return Err(wrong("collection", "add / remove"));
        }
        (FieldKind::Log, EditMode::Append) => Edit::Append {
            field: name,
            entry: validate::parse_input(spec, value)?,
        },
        (FieldKind::Log, _) => return Err(wrong("collection", "append")),
        (_, EditMode::Set) => Edit::Set {
            field: name,
            value: validate::parse_input(spec, value)?,
        },
        (_, _) => return Err(wrong("single value", "set")),
    })
}

/// The field name and value of a conflict resolution: `status` (or 状态) takes a state code;
/// any other field must be a single value (only those can conflict).
pub fn parse_resolution(
    kind: RecordKind,
    field: &str,
    value: &str,
) -> Result<(String, Value), ValidationError> {
    if field == "status" || field == "状态" {
        return Ok(("status".into(), json!(value.trim())));
    }
    let spec = field_spec(kind, field)?;
    if !matches!(spec.kind, FieldKind::Scalar | FieldKind::Json) {
        return Err(ValidationError::new(spec.name, Reason::NoConflict));
    }
    Ok((spec.name.into(), validate::parse_input(spec, value)?))
}

/// The first and last day of a month given as `2026-05`.
pub fn month_range(month: &str) -> Option<(NaiveDate, NaiveDate)> {
    let first = validate::parse_date(&format!("{}-01", month.trim()))?;
    let next = first.checked_add_months(Months::new(1))?;
    Some((first, next.pred_opt()?))
}

/// The calendar day in Beijing (UTC+8) at `at` — the day members see.
pub use crate::time::beijing_date;

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 6: the CLI and the phone bridge build records through this one path.
    #[test]
    fn a_visit_from_typed_fields_defaults_its_participant() {
        let kind = RecordKind::Visit;
        let mut f = Map::new();
        for (name, input) in [
            ("target_kind", "village"),
            ("contact_point", "cp-001"),
            ("group", "group-01"),
            ("activity_type", "调研座谈"),
            ("start", "2026-05-19 09:00"),
            ("end", "2026-05-19 11:30"),
            ("title", "座谈"),
        ] {
            put(kind, &mut f, name, input).unwrap();
        }
        fill_defaults(kind, &mut f, "member-0001", beijing_date(0));
        let RecordData::Visit(v) = build(kind, f).unwrap() else {
            panic!("a visit")
        };
        assert_eq!(v.participants, vec!["member-0001".to_string()]);
        assert_eq!(v.activity_type.code(), "research_symposium");
    }

    #[test]
    fn edits_follow_the_fields_storage() {
        let k = RecordKind::Visit;
        assert!(matches!(
            parse_edit(k, "participants", "member-0002", EditMode::Add),
            Ok(Edit::Add { .. })
        ));
        for (field, mode) in [
            ("participants", EditMode::Set),
            ("title", EditMode::Add),
            ("title", EditMode::Append),
        ] {
            let e = parse_edit(k, field, "x", mode).unwrap_err();
            assert!(
                matches!(e.reason, Reason::WrongEdit { .. }),
                "{field} {mode:?}"
            );
        }
        let e = parse_edit(k, "nonsense", "x", EditMode::Set).unwrap_err();
        assert!(matches!(e.reason, Reason::UnknownField { .. }));
        assert_eq!(
            parse_resolution(k, "状态", "approved").unwrap(),
            ("status".to_string(), json!("approved"))
        );
        assert!(parse_resolution(k, "participants", "x").is_err());
    }

    #[test]
    fn months_and_beijing_days() {
        let (a, b) = month_range("2026-02").unwrap();
        assert_eq!(
            (a.to_string(), b.to_string()),
            ("2026-02-01".into(), "2026-02-28".into())
        );
        assert!(month_range("2026-13").is_none());
        // 2026-05-18T16:00Z is already the 19th in Beijing.
        assert_eq!(beijing_date(1_779_120_000_000).to_string(), "2026-05-19");
    }
}
