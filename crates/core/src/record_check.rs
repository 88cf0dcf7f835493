//! A whole record checked as a server sees it (issue 10, point 3): every value of every field —
//! the losing values of a conflict too, since the console shows them — against the same
//! per-field checks a device runs on input ([`crate::validate::check_element`]), the root keys,
//! the workflow events, the thumbnails, and bounds on sizes. Re-exported by `validate`.
//!
//! Rules that span fields (an end before its start, a month outside its quarter) are not
//! checked here: two devices' valid concurrent edits can merge into a record that breaks them,
//! and such a merge must not be refused. Devices check them on input.

use automerge::{Automerge, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value as AmValue};
use serde_json::Value;

use crate::doc::{MAX_THUMBNAIL_BYTES, THUMBNAIL_PREFIX, json_of};
use crate::domain::RecordKind;
use crate::error::{Reason, ValidationError};
use crate::schema::{self, FieldKind, FieldSpec, SCHEMA_VERSION};
use crate::validate::{MAX_TEXT, check_element, is_id, is_photo_hash};
use crate::workflow::{EventType, State};

/// Largest document, saved, that a server or a device accepts (bytes).
pub const MAX_DOC_BYTES: usize = 16 << 20;
/// Most changes of one document in one push (or one merge).
pub const MAX_CHANGES_PER_PUSH: usize = 5_000;
/// Most elements of one set, keyed set or log.
pub const MAX_ELEMENTS: usize = 2_000;
/// Most workflow events of one record.
pub const MAX_EVENTS: usize = 1_000;
/// Most photos (thumbnails) of one record.
pub const MAX_PHOTOS: usize = 200;
/// Longest stored element of a keyed set or log, or JSON value (bytes of its JSON text).
pub const MAX_ELEMENT_JSON: usize = 4_096;

fn err(field: &str, reason: Reason) -> ValidationError {
    ValidationError::new(field, reason)
}

fn malformed(field: &str, what: String, zh: &str) -> ValidationError {
    err(
        field,
        Reason::Malformed {
            what,
            zh: zh.into(),
        },
    )
}

/// The sizes of a push: the document saved (`doc_bytes`, 0 if unknown) and how many changes it
/// brings.
pub fn check_sizes(doc_bytes: usize, changes: usize) -> Result<(), ValidationError> {
    if doc_bytes > MAX_DOC_BYTES {
        return Err(err(
            "record",
            Reason::TooLarge {
                size: doc_bytes,
                max: MAX_DOC_BYTES,
            },
        ));
    }
    if changes > MAX_CHANGES_PER_PUSH {
        return Err(err(
            "record",
            Reason::TooMany {
                what: "changes in one push",
                max: MAX_CHANGES_PER_PUSH,
            },
        ));
    }
    Ok(())
}

/// Whether `bytes` are a plausible JPEG thumbnail: at most [`MAX_THUMBNAIL_BYTES`], SOI at the
/// start, EOI at the end, and a frame header (SOF) that parses (precision, sides, components)
/// before the first scan. Pure code, no decoder.
pub fn check_jpeg(bytes: &[u8]) -> Result<(), &'static str> {
    if bytes.len() > MAX_THUMBNAIL_BYTES {
        return Err("larger than 64 KiB");
    }
    if bytes.len() < 4 || bytes[..2] != [0xFF, 0xD8] {
        return Err("no JPEG start marker");
    }
    if bytes[bytes.len() - 2..] != [0xFF, 0xD9] {
        return Err("no JPEG end marker");
    }
    let mut i = 2;
    loop {
        if i >= bytes.len() || bytes[i] != 0xFF {
            return Err("a segment does not start with a marker");
        }
        while i < bytes.len() && bytes[i] == 0xFF {
            i += 1; // fill bytes
        }
        let Some(&marker) = bytes.get(i) else {
            return Err("truncated marker");
        };
        i += 1;
        match marker {
            0x01 | 0xD0..=0xD7 => continue, // no length
            0xD8 | 0xD9 | 0xDA | 0x00 => return Err("no frame header before the image data"),
            _ => {}
        }
        let Some(len) = bytes
            .get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
        else {
            return Err("truncated segment length");
        };
        if len < 2 || i + len > bytes.len() {
            return Err("a segment runs past the end");
        }
        let seg = &bytes[i + 2..i + len];
        let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            if seg.len() < 6 {
                return Err("frame header too short");
            }
            let precision = seg[0];
            let height = u16::from_be_bytes([seg[1], seg[2]]);
            let width = u16::from_be_bytes([seg[3], seg[4]]);
            let components = seg[5] as usize;
            if !matches!(precision, 8 | 12) {
                return Err("frame header: bad sample precision");
            }
            if height == 0 || width == 0 {
                return Err("frame header: empty picture");
            }
            if !matches!(components, 1 | 3 | 4) || seg.len() != 6 + 3 * components {
                return Err("frame header: bad components");
            }
            return Ok(());
        }
        i += len;
    }
}

/// [`check_jpeg`] as the error a member reads (field `photos`).
pub fn check_thumbnail(bytes: &[u8]) -> Result<(), ValidationError> {
    check_jpeg(bytes).map_err(|why| err("photos", Reason::BadThumbnail { why }))
}

fn one<'a>(
    doc: &'a Automerge,
    obj: &ObjId,
    key: &str,
    field: &str,
) -> Result<Option<(AmValue<'a>, ObjId)>, ValidationError> {
    let mut all = doc.get_all(obj, key).unwrap_or_default();
    if all.len() > 1 {
        return Err(malformed(
            field,
            format!("`{key}` has {} concurrent values", all.len()),
            "基本信息存在并存的多个取值",
        ));
    }
    Ok(all.pop())
}

fn root_str(doc: &Automerge, key: &str) -> Result<String, ValidationError> {
    match one(doc, &ROOT, key, "record")? {
        Some((AmValue::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Str(s) => Ok(s.to_string()),
            _ => Err(malformed(
                "record",
                format!("`{key}` is not text"),
                "基本信息格式不对",
            )),
        },
        _ => Err(malformed(
            "record",
            format!("`{key}` is missing"),
            "缺少基本信息",
        )),
    }
}

fn root_int(doc: &Automerge, key: &str) -> Result<i64, ValidationError> {
    match one(doc, &ROOT, key, "record")? {
        Some((AmValue::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Int(i) => Ok(*i),
            _ => Err(malformed(
                "record",
                format!("`{key}` is not an integer"),
                "基本信息格式不对",
            )),
        },
        _ => Err(malformed(
            "record",
            format!("`{key}` is missing"),
            "缺少基本信息",
        )),
    }
}

fn container(
    doc: &Automerge,
    obj: &ObjId,
    key: &str,
    ty: ObjType,
    field: &str,
) -> Result<ObjId, ValidationError> {
    match one(doc, obj, key, field)? {
        Some((AmValue::Object(t), id)) if t == ty => Ok(id),
        _ => Err(malformed(
            field,
            format!("`{key}` is not a {ty:?}"),
            "结构不对",
        )),
    }
}

/// Checks a whole record document: root keys, every value of every field, events, thumbnails.
/// The error names the field (see [`ValidationError::zh`] for the member's words).
pub fn check_record(doc: &Automerge) -> Result<(), ValidationError> {
    let schema_version = root_int(doc, "schema")?;
    if !(1..=SCHEMA_VERSION).contains(&schema_version) {
        return Err(malformed(
            "record",
            format!("unknown document schema {schema_version}"),
            "未知的记录版本",
        ));
    }
    let kind_code = root_str(doc, "kind")?;
    let kind = RecordKind::parse(&kind_code).ok_or_else(|| {
        malformed(
            "record",
            format!("unknown record kind `{}`", short(&kind_code)),
            "未知的记录类别",
        )
    })?;
    for key in ["id", "by", "dev"] {
        let v = root_str(doc, key)?;
        if !is_id(&v) {
            return Err(malformed(
                "record",
                format!("`{key}` is not an id: `{}`", short(&v)),
                "基本信息不是有效的编号",
            ));
        }
    }
    root_int(doc, "at")?;
    let f = container(doc, &ROOT, "f", ObjType::Map, "record")?;
    let ev = container(doc, &ROOT, "ev", ObjType::List, "record")?;
    let mut thumbnails = 0;
    for key in doc.keys(ROOT) {
        match key.as_str() {
            "schema" | "kind" | "id" | "by" | "dev" | "at" | "f" | "ev" => {}
            "wf" => {
                for (v, _) in doc.get_all(ROOT, "wf").unwrap_or_default() {
                    let ok = matches!(&v, AmValue::Scalar(s)
                        if matches!(s.as_ref(), ScalarValue::Str(s) if s.len() <= 100));
                    if !ok {
                        return Err(malformed(
                            "status",
                            "`wf` is not an event id".into(),
                            "流转状态格式不对",
                        ));
                    }
                }
            }
            k if k.starts_with(THUMBNAIL_PREFIX) => {
                thumbnails += 1;
                if thumbnails > MAX_PHOTOS {
                    return Err(err(
                        "photos",
                        Reason::TooMany {
                            what: "thumbnails",
                            max: MAX_PHOTOS,
                        },
                    ));
                }
                if !is_photo_hash(&k[THUMBNAIL_PREFIX.len()..]) {
                    return Err(malformed(
                        "photos",
                        format!("thumbnail key `{}` does not name a photo hash", short(k)),
                        "缩略图的照片编号不对",
                    ));
                }
                for (v, _) in doc.get_all(ROOT, k).unwrap_or_default() {
                    match &v {
                        AmValue::Scalar(s) => match s.as_ref() {
                            ScalarValue::Bytes(b) => check_thumbnail(b)?,
                            ScalarValue::Null => {}
                            _ => return Err(check_thumbnail(&[]).unwrap_err()),
                        },
                        _ => return Err(check_thumbnail(&[]).unwrap_err()),
                    }
                }
            }
            other => {
                return Err(malformed(
                    "record",
                    format!("unknown root key `{}`", short(other)),
                    "记录中有未知的数据项",
                ));
            }
        }
    }
    check_fields_of(doc, kind, &f)?;
    check_events(doc, &ev)
}

fn short(s: &str) -> String {
    if s.chars().count() > 40 {
        s.chars().take(40).collect::<String>() + "…"
    } else {
        s.to_string()
    }
}

fn check_fields_of(doc: &Automerge, kind: RecordKind, f: &ObjId) -> Result<(), ValidationError> {
    for key in doc.keys(f) {
        if schema::fields(kind).iter().all(|s| s.name != key) {
            return Err(err(
                &key,
                Reason::UnknownField {
                    choices: schema::field_choices(kind),
                },
            ));
        }
    }
    for spec in schema::fields(kind) {
        check_field(doc, f, spec)?;
    }
    Ok(())
}

fn too_many(spec: &FieldSpec) -> ValidationError {
    err(
        spec.name,
        Reason::TooMany {
            what: "elements",
            max: MAX_ELEMENTS,
        },
    )
}

/// A stored JSON text (an element of a keyed set or log, a `Json` field) parsed, bounded.
fn stored_json(spec: &FieldSpec, s: &str) -> Result<Value, ValidationError> {
    if s.len() > MAX_ELEMENT_JSON {
        return Err(err(
            spec.name,
            Reason::TooLong {
                max: MAX_ELEMENT_JSON,
            },
        ));
    }
    serde_json::from_str(s).map_err(|_| {
        malformed(
            spec.name,
            "a stored element is not JSON".into(),
            "内容格式不对",
        )
    })
}

fn not_a_value(spec: &FieldSpec) -> ValidationError {
    err(
        spec.name,
        Reason::BadFormat {
            value: "(object)".into(),
            expected: "single value",
        },
    )
}

fn check_field(doc: &Automerge, f: &ObjId, spec: &FieldSpec) -> Result<(), ValidationError> {
    let all = doc.get_all(f, spec.name).unwrap_or_default();
    match spec.kind {
        FieldKind::Scalar | FieldKind::Json => {
            if all.is_empty() {
                return check_element(spec, &Value::Null);
            }
            // Every concurrent value: the losing ones are shown as a conflict too.
            for (v, _) in &all {
                let AmValue::Scalar(s) = v else {
                    return Err(not_a_value(spec));
                };
                let value = match (spec.kind, s.as_ref()) {
                    (FieldKind::Json, ScalarValue::Str(text)) => stored_json(spec, text)?,
                    (FieldKind::Json, ScalarValue::Null) => Value::Null,
                    (FieldKind::Json, _) => return Err(not_a_value(spec)),
                    (_, s) => json_of(s).ok_or_else(|| not_a_value(spec))?,
                };
                check_element(spec, &value)?;
            }
            Ok(())
        }
        FieldKind::Text => {
            let id = only_object(spec, &all, ObjType::Text)?;
            let text = doc.text(&id).map_err(|_| not_a_value(spec))?;
            check_element(spec, &Value::String(text))
        }
        FieldKind::Set | FieldKind::KeyedSet => {
            let id = only_object(spec, &all, ObjType::Map)?;
            let mut n = 0;
            for item in doc.map_range(&id, ..) {
                n += 1;
                if n > MAX_ELEMENTS {
                    return Err(too_many(spec));
                }
                for (v, _) in doc.get_all(&id, item.key.as_ref()).unwrap_or_default() {
                    let AmValue::Scalar(s) = &v else {
                        return Err(not_a_value(spec));
                    };
                    if spec.kind == FieldKind::Set {
                        // The value is the time of the add.
                        if !matches!(s.as_ref(), ScalarValue::Int(_)) {
                            return Err(not_a_value(spec));
                        }
                        check_element(spec, &Value::String(item.key.to_string()))?;
                        continue;
                    }
                    let ScalarValue::Str(text) = s.as_ref() else {
                        return Err(not_a_value(spec));
                    };
                    let element = stored_json(spec, text)?;
                    check_element(spec, &element)?;
                    if element.get("hash").and_then(Value::as_str) != Some(item.key.as_ref()) {
                        return Err(malformed(
                            spec.name,
                            "an element is stored under another key than its hash".into(),
                            "照片的编号与存放位置不一致",
                        ));
                    }
                }
            }
            Ok(())
        }
        FieldKind::Log => {
            let id = only_object(spec, &all, ObjType::List)?;
            if doc.length(&id) > MAX_ELEMENTS {
                return Err(too_many(spec));
            }
            for item in doc.list_range(&id, ..) {
                match item.value {
                    automerge::ValueRef::Scalar(automerge::ScalarValueRef::Str(s)) => {
                        check_element(spec, &stored_json(spec, &s)?)?;
                    }
                    _ => return Err(not_a_value(spec)),
                }
            }
            Ok(())
        }
    }
}

fn only_object(
    spec: &FieldSpec,
    all: &[(AmValue<'_>, ObjId)],
    ty: ObjType,
) -> Result<ObjId, ValidationError> {
    match all {
        [(AmValue::Object(t), id)] if *t == ty => Ok(id.clone()),
        _ => Err(malformed(
            spec.name,
            format!("`{}` is not one {ty:?}", spec.name),
            "字段结构不对",
        )),
    }
}

fn check_events(doc: &Automerge, ev: &ObjId) -> Result<(), ValidationError> {
    if doc.length(ev) > MAX_EVENTS {
        return Err(err(
            "events",
            Reason::TooMany {
                what: "workflow events",
                max: MAX_EVENTS,
            },
        ));
    }
    let bad = |what: &str| {
        malformed(
            "events",
            format!("a workflow event {what}"),
            "流转记录格式不对",
        )
    };
    for item in doc.list_range(ev, ..) {
        let automerge::ValueRef::Object(ObjType::Map) = item.value else {
            return Err(bad("is not a map"));
        };
        let e = item.id();
        for key in doc.keys(&e) {
            if !matches!(
                key.as_str(),
                "t" | "by" | "dev" | "at" | "note" | "to" | "unit" | "due" | "undo"
            ) {
                return Err(bad(&format!("has the unknown key `{}`", short(&key))));
            }
        }
        let get = |k: &str| match doc.get(&e, k) {
            Ok(Some((AmValue::Scalar(s), _))) => Some(s.into_owned()),
            _ => None,
        };
        let text = |k: &str| get(k).and_then(|s| s.as_str().map(str::to_string));
        if text("t").as_deref().and_then(EventType::parse).is_none() {
            return Err(bad("has no known step"));
        }
        if !text("by").is_some_and(|s| is_id(&s)) || !text("dev").is_some_and(|s| is_id(&s)) {
            return Err(bad("does not name its member and device"));
        }
        if !matches!(get("at"), Some(ScalarValue::Int(_))) {
            return Err(bad("has no time"));
        }
        if let Some(note) = get("note") {
            let Some(note) = note.as_str() else {
                return Err(bad("has a note that is not text"));
            };
            if note.chars().count() > MAX_TEXT {
                return Err(err("events", Reason::TooLong { max: MAX_TEXT }));
            }
            if note
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t')
            {
                return Err(err("events", Reason::ControlCharacter));
            }
        }
        if get("to").is_some() && text("to").as_deref().and_then(State::parse).is_none() {
            return Err(bad("names an unknown state"));
        }
        // Issue 13: a forward's unit (a directory id) and due day, an undo's event id.
        if get("unit").is_some() && !text("unit").is_some_and(|s| is_id(&s)) {
            return Err(bad("names a unit that is not an id"));
        }
        if get("due").is_some()
            && !text("due").is_some_and(|s| {
                s.len() == 10 && chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d").is_ok()
            })
        {
            return Err(bad("has a due day that is not a date"));
        }
        if get("undo").is_some()
            && !text("undo").is_some_and(|s| {
                s.len() <= 80
                    && s.split_once('@').is_some_and(|(n, a)| {
                        !n.is_empty()
                            && n.bytes().all(|b| b.is_ascii_digit())
                            && a.bytes().all(|b| b.is_ascii_hexdigit())
                    })
            })
        {
            return Err(bad("names an undone event that is not an event id"));
        }
    }
    Ok(())
}
