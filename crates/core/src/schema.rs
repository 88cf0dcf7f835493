//! Which field of which record kind is stored how, and what members call it.
//!
//! The schema is data: one table per kind. `doc.rs` reads it to map a record's JSON shape to
//! automerge objects, and the CLI reads it to turn `FIELD VALUE` into an edit.

use crate::domain::RecordKind;

/// The version of the document layout written into every record (`schema` at the root).
pub const SCHEMA_VERSION: i64 = 1;

/// How one field is stored, and therefore how it merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// A scalar (string, number, null). Concurrent writes keep every value as a conflict.
    Scalar,
    /// A small structured value (a GPS fix) stored as one scalar; conflicts like a scalar.
    Json,
    /// Free text: automerge Text, merges by characters.
    Text,
    /// A set of strings: concurrent adds and removes merge, an add wins over a concurrent remove.
    Set,
    /// A set of objects keyed by their `hash` field (photos).
    KeyedSet,
    /// An append-only log: concurrent entries are all kept.
    Log,
}

/// One field of a record kind.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub name: &'static str,
    pub kind: FieldKind,
    /// The type of the value (of each element, for sets and logs).
    pub ty: ValueType,
    /// What members call it.
    pub zh: &'static str,
}

/// The type of a field's value, which decides how input is parsed and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// Required text on one line.
    Str,
    /// Text that may be empty.
    OptStr,
    /// A required id (`[A-Za-z0-9_-]{1,64}`).
    Id,
    /// An id or nothing.
    OptId,
    Int,
    Date,
    DateTime,
    Gps,
    TargetKind,
    ActivityType,
    OpinionKind,
    Urgency,
    ChapterLevel,
    /// A yes/no flag (`true`/`false`; typed 是/否). `null` (a document without the field) reads
    /// as false, and a false flag is not written into a new document.
    Bool,
    Photo,
    Assistance,
}

const fn f(name: &'static str, kind: FieldKind, ty: ValueType, zh: &'static str) -> FieldSpec {
    FieldSpec { name, kind, ty, zh }
}

use FieldKind::*;
use ValueType as T;

const VISIT: &[FieldSpec] = &[
    f("target_kind", Scalar, T::TargetKind, "对象类别"),
    f("contact_point", Scalar, T::Id, "联系点"),
    f("group", Scalar, T::Id, "活动组"),
    f("activity_type", Scalar, T::ActivityType, "活动类型"),
    f("start", Scalar, T::DateTime, "开始时间"),
    f("end", Scalar, T::DateTime, "结束时间"),
    f("title", Scalar, T::Str, "活动主题"),
    f("summary", Text, T::OptStr, "活动摘要"),
    f("participants", Set, T::Id, "参加委员"),
    f("helpers", Set, T::Str, "辅助力量"),
    f("gps", Json, T::Gps, "位置"),
    f("photos", KeyedSet, T::Photo, "照片"),
];

const OPINION: &[FieldSpec] = &[
    f("topic", Scalar, T::Str, "主题"),
    f("opinion_kind", Scalar, T::OpinionKind, "类别"),
    f("text", Text, T::OptStr, "内容"),
    f("source", Scalar, T::OptStr, "反映人"),
    f("urgency", Scalar, T::Urgency, "紧急程度"),
    f("contact_point", Scalar, T::Id, "联系点"),
    f("group", Scalar, T::Id, "活动组"),
    f("recorded_on", Scalar, T::Date, "记录日期"),
    f("visit", Scalar, T::OptId, "所属活动"),
];

const HOUSEHOLD: &[FieldSpec] = &[
    f("head_name", Scalar, T::Str, "户主"),
    f("contact_point", Scalar, T::Id, "联系点"),
    f("group", Scalar, T::Id, "活动组"),
    f("address", Scalar, T::OptStr, "住址"),
    f("size", Scalar, T::Int, "家庭人口"),
    f("situation", Text, T::OptStr, "困难情况"),
    f("assisting_members", Set, T::Id, "结对委员"),
    f("log", Log, T::Assistance, "帮扶记录"),
];

const PLAN: &[FieldSpec] = &[
    f("year", Scalar, T::Int, "年度"),
    f("quarter", Scalar, T::Int, "季度"),
    f("month", Scalar, T::Int, "月份"),
    f("owner", Scalar, T::Id, "责任委员"),
    f("group", Scalar, T::Id, "活动组"),
    f("activity_type", Scalar, T::ActivityType, "活动类型"),
    f("title", Scalar, T::Str, "计划内容"),
    f("contact_point", Scalar, T::OptId, "联系点"),
];

const MEMBER: &[FieldSpec] = &[
    f("name", Scalar, T::Str, "姓名"),
    f("chapter", Scalar, T::Id, "所属政协"),
    f("committee", Scalar, T::OptId, "专委会"),
    f("group", Scalar, T::Id, "活动组"),
    f("sector", Scalar, T::OptStr, "界别"),
];

const COMMITTEE: &[FieldSpec] = &[
    f("name", Scalar, T::Str, "名称"),
    f("chapter", Scalar, T::Id, "所属政协"),
];

const GROUP: &[FieldSpec] = &[
    f("name", Scalar, T::Str, "名称"),
    f("chapter", Scalar, T::Id, "所属政协"),
    f("committee", Scalar, T::OptId, "专委会"),
    f("leader", Scalar, T::Id, "组长"),
    f("contact_points", Set, T::Id, "联系点"),
    f("legal_advisory", Scalar, T::Bool, "法律顾问组"),
];

const CONTACT_POINT: &[FieldSpec] = &[
    f("name", Scalar, T::Str, "名称"),
    f("target_kind", Scalar, T::TargetKind, "类别"),
    f("chapter", Scalar, T::Id, "所属政协"),
    f("address", Scalar, T::OptStr, "地址"),
    f("gps", Json, T::Gps, "位置"),
];

const CHAPTER: &[FieldSpec] = &[
    f("name", Scalar, T::Str, "名称"),
    f("level", Scalar, T::ChapterLevel, "级别"),
    f("parent", Scalar, T::OptId, "上级"),
];

const UNIT: &[FieldSpec] = &[
    f("name", Scalar, T::Str, "名称"),
    f("chapter", Scalar, T::OptId, "所属政协"),
];

/// The fields of a kind, in display order.
pub fn fields(kind: RecordKind) -> &'static [FieldSpec] {
    match kind {
        RecordKind::Visit => VISIT,
        RecordKind::Opinion => OPINION,
        RecordKind::Household => HOUSEHOLD,
        RecordKind::Plan => PLAN,
        RecordKind::Member => MEMBER,
        RecordKind::Committee => COMMITTEE,
        RecordKind::Group => GROUP,
        RecordKind::ContactPoint => CONTACT_POINT,
        RecordKind::Chapter => CHAPTER,
        RecordKind::Unit => UNIT,
    }
}

/// Looks a field up by its name or its Chinese label.
pub fn field(kind: RecordKind, name: &str) -> Option<&'static FieldSpec> {
    fields(kind).iter().find(|f| f.name == name || f.zh == name)
}

/// `name（中文）, …` for error messages.
pub fn field_choices(kind: RecordKind) -> String {
    fields(kind)
        .iter()
        .map(|f| format!("{}（{}）", f.name, f.zh))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    /// The schema tables and the serde shape of the domain types must agree key for key.
    #[test]
    fn schema_matches_serde_shape() {
        for data in testdata::one_of_each() {
            let kind = data.kind();
            let json = serde_json::to_value(&data).unwrap();
            let mut keys: Vec<&str> = json
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.as_str())
                .filter(|k| *k != "kind")
                .collect();
            keys.sort();
            let mut names: Vec<&str> = fields(kind).iter().map(|f| f.name).collect();
            names.sort();
            assert_eq!(keys, names, "schema of {kind}");
        }
    }

    #[test]
    fn fields_found_by_chinese_label() {
        assert_eq!(field(RecordKind::Visit, "结束时间").unwrap().name, "end");
        assert!(field(RecordKind::Visit, "nonsense").is_none());
    }
}
