//! Errors of the core: small enums that name the field and the reason.

use crate::domain::RecordKind;

/// Why a value was refused. Each reason has an English form (logs) and a Chinese one (members).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    /// The field's name (see `schema::fields`), or `record` for the whole record.
    pub field: String,
    pub reason: Reason,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, reason: Reason) -> Self {
        ValidationError {
            field: field.into(),
            reason,
        }
    }

    /// The message members read.
    pub fn zh(&self, kind: RecordKind) -> String {
        let label = crate::schema::field(kind, &self.field)
            .map(|f| format!("{}（{}）", f.zh, f.name))
            .unwrap_or_else(|| match self.field.as_str() {
                "record" => "记录".into(),
                "events" | "status" => "流转记录".into(),
                other => other.to_string(),
            });
        format!("{label}：{}", self.reason.zh())
    }
}

/// The reason a value was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Reason {
    #[error("must not be empty")]
    Empty,
    #[error("is longer than {max} characters")]
    TooLong { max: usize },
    #[error("ends before it starts")]
    EndBeforeStart,
    #[error("lasts longer than {max_days} days")]
    TooLongDuration { max_days: i64 },
    #[error("unknown {what} `{value}`; expected one of: {choices}")]
    UnknownValue {
        what: &'static str,
        value: String,
        choices: String,
    },
    #[error("`{value}` is not a valid {expected}")]
    BadFormat {
        value: String,
        expected: &'static str,
    },
    #[error("{value} is out of range {min}..={max}")]
    OutOfRange {
        value: String,
        min: String,
        max: String,
    },
    #[error("month {month} is not in quarter {quarter}")]
    MonthNotInQuarter { month: i64, quarter: i64 },
    #[error("cannot submit with an empty {what}")]
    EmptyOnSubmit { what: &'static str },
    #[error("no such field; fields of this kind: {choices}")]
    UnknownField { choices: String },
    #[error("this field is a {kind}; use {how}")]
    WrongEdit {
        kind: &'static str,
        how: &'static str,
    },
    #[error("has no conflict to resolve")]
    NoConflict,
    #[error("cannot {event} a record that is {state}")]
    InvalidTransition {
        event: &'static str,
        state: &'static str,
    },
    #[error("{event} is not a step of this record kind")]
    NotATransition { event: &'static str },
    #[error("the record is deleted; restore it first")]
    Deleted,
    #[error("contains a control character")]
    ControlCharacter,
    /// The document's structure is not a sanjin record's (issue 10).
    #[error("{what}")]
    Malformed { what: String, zh: String },
    /// A thumbnail that is not a JPEG of at most 64 KiB (issue 10).
    #[error("the thumbnail is not a JPEG of at most 64 KiB: {why}")]
    BadThumbnail { why: &'static str },
    /// More elements than a record may hold (issue 10).
    #[error("holds more than {max} {what}")]
    TooMany { what: &'static str, max: usize },
    /// A change the server would refuse (issue 10), refused on the device first.
    #[error("{reason}")]
    Refused {
        code: crate::protocol::RefusalCode,
        reason: String,
        zh: String,
    },
    /// A document or a push larger than accepted (issue 10).
    #[error("is {size} bytes, more than the {max} accepted")]
    TooLarge { size: usize, max: usize },
}

impl Reason {
    /// The reason in Simplified Chinese, with what to do.
    pub fn zh(&self) -> String {
        match self {
            Reason::Empty => "不能为空，请填写".into(),
            Reason::TooLong { max } => format!("超过 {max} 个字，请精简"),
            Reason::EndBeforeStart => "结束时间早于开始时间，请检查时间".into(),
            Reason::TooLongDuration { max_days } => {
                format!("活动时长超过 {max_days} 天，请检查日期")
            }
            Reason::UnknownValue { value, choices, .. } => {
                format!("无法识别“{value}”，可选：{choices}")
            }
            Reason::BadFormat { value, expected } => {
                format!("“{value}”格式不对，应为 {}", expected_zh(expected))
            }
            Reason::OutOfRange { value, min, max } => {
                format!("{value} 超出范围（{min} 至 {max}）")
            }
            Reason::MonthNotInQuarter { month, quarter } => {
                format!("{month} 月不在第 {quarter} 季度内，请核对季度和月份")
            }
            Reason::EmptyOnSubmit { what } => {
                format!("提交前请先填写{}", expected_zh(what))
            }
            Reason::UnknownField { choices } => format!("没有这个字段，可用字段：{choices}"),
            Reason::WrongEdit { how, .. } => format!("该字段不能直接赋值，请用 {how}"),
            Reason::NoConflict => "该字段没有待裁定的冲突".into(),
            Reason::InvalidTransition { event, state } => {
                format!("当前状态为“{state}”，不能执行“{event}”")
            }
            Reason::NotATransition { event } => format!("此类记录没有“{event}”这一步"),
            Reason::Deleted => "记录已删除，请先恢复".into(),
            Reason::ControlCharacter => "含有控制字符，请删除后重试".into(),
            Reason::Malformed { zh, .. } => format!("数据结构不对（{zh}），请用 sanjin 正常修改"),
            Reason::BadThumbnail { .. } => {
                "缩略图不是有效的 JPEG 图片或超过 64 KiB，请删除该照片后重新添加".into()
            }
            Reason::Refused { code, zh, .. } => format!("{zh}。{}", code.zh()),
            Reason::TooMany { max, .. } => format!("超过 {max} 项的上限，请删去一些"),
            Reason::TooLarge { size, max } => {
                format!("大小为 {size} 字节，超过上限 {max} 字节，请删去一些内容或照片")
            }
        }
    }
}

fn expected_zh(what: &str) -> &str {
    match what {
        "date" => "日期（如 2026-05-19）",
        "date and time" => "日期时间（如 2026-05-19T09:30）",
        "integer" => "整数",
        "number" => "数字",
        "GPS fix" => "纬度,经度（如 30.92,113.91）",
        "id" => "编号（字母、数字、- 或 _，最长 64 位）",
        "summary" => "活动摘要",
        "participant" => "参加委员",
        "text" => "内容",
        "string" => "文字",
        "photo" => "照片信息（含 hash）",
        "assistance entry" => "帮扶记录（含 date、member、action）",
        "photo hash" => "照片编号（64 位小写十六进制数字）",
        "single value" => "单个取值",
        "yes or no" => "是 或 否",
        other => other,
    }
}

/// Everything that can go wrong in the core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {0}")]
    Invalid(#[from] ValidationError),
    #[error("record {id}: document could not be read: {reason}")]
    Corrupt { id: String, reason: String },
    #[error(
        "record {id} uses document schema {found}; this sanjin reads up to {supported}: upgrade sanjin"
    )]
    UnknownSchema {
        id: String,
        found: i64,
        supported: i64,
    },
    #[error("cannot merge record {left} ({left_kind}) with record {right} ({right_kind})")]
    Mismatch {
        left: String,
        left_kind: String,
        right: String,
        right_kind: String,
    },
    #[error("invalid id `{0}`: use letters, digits, `-` or `_`, at most 64")]
    BadId(String),
    #[error("automerge: {0}")]
    Automerge(#[from] automerge::AutomergeError),
}
