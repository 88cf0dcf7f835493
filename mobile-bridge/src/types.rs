//! The records, enums and drafts the foreign side sees. Values are mirrors of the core's types
//! (strings for vocabulary codes and dates, so the core parses and checks them); a field value
//! of any kind travels as JSON text.

use sanjin_core::domain::{PhotoRef, RecordKind};
use sanjin_core::{HistoryEntry, IndexEntry, RecordView};

use crate::error::ApiError;

/// Every kind of record. Members create the first four; the rest is the directory, maintained
/// by the office and received by sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Kind {
    Visit,
    Opinion,
    Household,
    Plan,
    Member,
    Committee,
    Group,
    ContactPoint,
    Chapter,
}

impl From<Kind> for RecordKind {
    fn from(k: Kind) -> RecordKind {
        match k {
            Kind::Visit => RecordKind::Visit,
            Kind::Opinion => RecordKind::Opinion,
            Kind::Household => RecordKind::Household,
            Kind::Plan => RecordKind::Plan,
            Kind::Member => RecordKind::Member,
            Kind::Committee => RecordKind::Committee,
            Kind::Group => RecordKind::Group,
            Kind::ContactPoint => RecordKind::ContactPoint,
            Kind::Chapter => RecordKind::Chapter,
        }
    }
}

impl From<RecordKind> for Kind {
    fn from(k: RecordKind) -> Kind {
        match k {
            RecordKind::Visit => Kind::Visit,
            RecordKind::Opinion => Kind::Opinion,
            RecordKind::Household => Kind::Household,
            RecordKind::Plan => Kind::Plan,
            RecordKind::Member => Kind::Member,
            RecordKind::Committee => Kind::Committee,
            RecordKind::Group => Kind::Group,
            RecordKind::ContactPoint => Kind::ContactPoint,
            RecordKind::Chapter => Kind::Chapter,
        }
    }
}

/// A visit as the member fills it in. Vocabulary fields take a code or the Chinese label
/// (`village` or `农村`, `research_symposium` or `调研座谈`); times are `2026-05-19T09:00` or
/// `2026-05-19 09:00`. Without participants, the member is the participant.
#[derive(Debug, Clone, uniffi::Record)]
pub struct VisitDraft {
    pub target_kind: String,
    pub contact_point: String,
    pub group: String,
    pub activity_type: String,
    pub start: String,
    pub end: String,
    pub title: String,
    #[uniffi(default)]
    pub summary: String,
    #[uniffi(default)]
    pub participants: Vec<String>,
    /// Non-member helpers (辅助力量) by name.
    #[uniffi(default)]
    pub helpers: Vec<String>,
    /// `latitude,longitude` in WGS-84 degrees.
    #[uniffi(default)]
    pub gps: Option<String>,
}

/// An opinion note (社情民意). Recorded today (Beijing time) unless `recorded_on` is given.
#[derive(Debug, Clone, uniffi::Record)]
pub struct OpinionDraft {
    pub topic: String,
    pub contact_point: String,
    pub group: String,
    /// `opinion`, `micro_proposal`, `micro_suggestion` or `legal_appeal` (or the label).
    #[uniffi(default = "opinion")]
    pub opinion_kind: String,
    #[uniffi(default)]
    pub text: String,
    /// Who said it; `None` keeps the source anonymous.
    #[uniffi(default)]
    pub source: Option<String>,
    /// `normal`, `urgent` or `very_urgent` (or the label).
    #[uniffi(default = "normal")]
    pub urgency: String,
    #[uniffi(default)]
    pub recorded_on: Option<String>,
    /// The visit it came up in.
    #[uniffi(default)]
    pub visit: Option<String>,
}

/// A household under pair assistance (结对帮扶). Without members, the member is paired.
#[derive(Debug, Clone, uniffi::Record)]
pub struct HouseholdDraft {
    pub head_name: String,
    pub contact_point: String,
    pub group: String,
    #[uniffi(default)]
    pub address: String,
    #[uniffi(default = 1)]
    pub size: i64,
    #[uniffi(default)]
    pub situation: String,
    #[uniffi(default)]
    pub assisting_members: Vec<String>,
}

/// A plan item (年度计划). Without an owner, the member owns it.
#[derive(Debug, Clone, uniffi::Record)]
pub struct PlanDraft {
    pub year: i64,
    pub quarter: i64,
    pub month: i64,
    pub group: String,
    pub activity_type: String,
    pub title: String,
    #[uniffi(default)]
    pub owner: Option<String>,
    #[uniffi(default)]
    pub contact_point: Option<String>,
}

/// One change to one field; `value` is typed input as for the drafts (structured elements, such
/// as a household's assistance entry, as JSON text).
#[derive(Debug, Clone, uniffi::Enum)]
pub enum FieldEdit {
    /// Replace a single value or a whole text (texts are diffed, so concurrent edits elsewhere
    /// in the text survive).
    Set { field: String, value: String },
    /// Add an element to a set (participants, helpers, paired members).
    Add { field: String, value: String },
    /// Remove an element from a set, by value.
    Remove { field: String, value: String },
    /// Append an entry to a log (a household's assistance log).
    Append { field: String, value: String },
}

/// A workflow step. Visits: submit, return, approve. Opinions: submit, accept, forward, handle,
/// feedback. Returning, approving and accepting need a leader's or the office's role on the
/// server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Step {
    Submit,
    Return,
    Approve,
    Accept,
    Forward,
    Handle,
    Feedback,
}

impl Step {
    pub(crate) fn code(self) -> &'static str {
        match self {
            Step::Submit => "submit",
            Step::Return => "return",
            Step::Approve => "approve",
            Step::Accept => "accept",
            Step::Forward => "forward",
            Step::Handle => "handle",
            Step::Feedback => "feedback",
        }
    }
}

/// Which records to list. Empty fields do not filter; `month` (`2026-05`) stands for `from`/`to`.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ListFilter {
    pub kind: Kind,
    #[uniffi(default)]
    pub month: Option<String>,
    /// Inclusive, `YYYY-MM-DD`.
    #[uniffi(default)]
    pub from: Option<String>,
    #[uniffi(default)]
    pub to: Option<String>,
    #[uniffi(default)]
    pub group: Option<String>,
    #[uniffi(default)]
    pub contact_point: Option<String>,
    /// Records a member took part in.
    #[uniffi(default)]
    pub member: Option<String>,
    /// Activity type or opinion kind code.
    #[uniffi(default)]
    pub type_code: Option<String>,
    #[uniffi(default)]
    pub target_kind: Option<String>,
    /// A state code such as `draft`, `submitted`, `approved`.
    #[uniffi(default)]
    pub status: Option<String>,
    #[uniffi(default)]
    pub only_conflicts: bool,
    #[uniffi(default)]
    pub include_deleted: bool,
    /// Only records the server refused, as they were refused (issue 10).
    #[uniffi(default)]
    pub refused_only: bool,
    #[uniffi(default)]
    pub limit: Option<u32>,
}

/// One row of a list (no document is opened to produce it).
#[derive(Debug, Clone, uniffi::Record)]
pub struct RecordSummary {
    pub id: String,
    pub kind: Kind,
    /// `YYYY-MM-DD`: a visit's start, an opinion's date, a plan month's first day.
    pub date: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub group: Option<String>,
    pub contact_point: Option<String>,
    pub created_by: String,
    pub type_code: Option<String>,
    pub target_kind: Option<String>,
    pub urgency: Option<String>,
    pub status: String,
    pub deleted: bool,
    /// Open conflicts waiting for a leader.
    pub conflicts: u32,
    pub title: String,
    pub members: Vec<String>,
    /// The server refused the record as it is now (issue 10): `show` says why. It is not sent
    /// again until it changes.
    pub refused: bool,
    /// 已送达 (issue 12): the device is enrolled and the server holds everything it has of the
    /// record, as the server answered it or as a receipt brought back by another phone says.
    pub delivered: bool,
}

impl From<IndexEntry> for RecordSummary {
    fn from(e: IndexEntry) -> Self {
        RecordSummary {
            kind: RecordKind::parse(&e.kind).map_or(Kind::Visit, Kind::from),
            id: e.id,
            date: e.date,
            start: e.start,
            end: e.end,
            group: e.group,
            contact_point: e.contact_point,
            created_by: e.created_by,
            type_code: e.type_code,
            target_kind: e.target_kind,
            urgency: e.urgency,
            status: e.status,
            deleted: e.deleted,
            conflicts: e.conflicts,
            title: e.title,
            members: e.members,
            refused: false,
            delivered: false,
        }
    }
}

/// One field of a record: its schema name, what members call it, and its value as JSON text.
#[derive(Debug, Clone, uniffi::Record)]
pub struct FieldValue {
    pub name: String,
    pub label_zh: String,
    pub value_json: String,
}

/// One of the concurrent values of a conflicted field, with who wrote it, where and when.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ConflictValue {
    pub value_json: String,
    pub member: String,
    pub device: String,
    pub at_ms: i64,
}

/// A field (or `status`) with concurrent values, shown as `shown_json` until resolved.
#[derive(Debug, Clone, uniffi::Record)]
pub struct FieldConflict {
    pub field: String,
    pub shown_json: String,
    pub values: Vec<ConflictValue>,
}

/// A workflow event (submit, return, resolve, delete, …).
#[derive(Debug, Clone, uniffi::Record)]
pub struct WorkflowEvent {
    pub event: String,
    pub member: String,
    pub device: String,
    pub at_ms: i64,
    pub note: Option<String>,
    /// For a `resolve` of the status: the state chosen.
    pub to: Option<String>,
    /// Whether it changed the state (a concurrent, no longer valid step is kept but not applied).
    pub applied: bool,
}

/// One change of the record's history (留痕): who, which device, when, what.
#[derive(Debug, Clone, uniffi::Record)]
pub struct HistoryChange {
    pub hash: String,
    pub member: String,
    pub device: String,
    pub at_ms: i64,
    pub action: String,
    pub fields: Vec<String>,
}

/// A record with everything a detail screen shows.
#[derive(Debug, Clone, uniffi::Record)]
pub struct RecordDetail {
    pub id: String,
    pub kind: Kind,
    pub status: String,
    pub status_zh: String,
    pub deleted: bool,
    pub created_by: String,
    pub created_device: String,
    pub created_at_ms: i64,
    /// In display order.
    pub fields: Vec<FieldValue>,
    /// All fields as one JSON object (with `kind`).
    pub data_json: String,
    pub conflicts: Vec<FieldConflict>,
    pub events: Vec<WorkflowEvent>,
    pub history: Vec<HistoryChange>,
    /// The photos attached (visits), in the record's order; their thumbnails come from
    /// `DeviceStore.photo_thumbnail`.
    pub photos: Vec<Photo>,
    /// Why the server refused the record, while it is exactly as it was refused (issue 10);
    /// `None` once it is accepted or changed (a changed record is sent again).
    pub refusal: Option<RecordRefusal>,
    /// 已送达 (issue 12): see `RecordSummary::delivered`.
    pub delivered: bool,
}

/// The server's refusal of a record, as the member's phone shows it (issue 10). No personal
/// data: a code, fixed Chinese words, a field's schema name and label, a time.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RecordRefusal {
    /// `forbidden`, `role`, `bad_signature`, `invalid_field`, `conflict_resolution`, … (see
    /// `docs/PROTOCOL.md`).
    pub code: String,
    /// Why, and what to do, in Chinese, for the member.
    pub message_zh: String,
    /// The field it is about (schema name, or `status` for a workflow step), if any.
    pub field: Option<String>,
    /// What members call that field (`标题`, `状态`).
    pub field_zh: Option<String>,
    /// When the server's answer arrived (UTC milliseconds, this device's clock).
    pub at_ms: i64,
}

impl RecordRefusal {
    pub(crate) fn of(kind: RecordKind, r: &sanjin_store::Refused) -> Self {
        let field = Some(r.field.clone()).filter(|f| !f.is_empty());
        RecordRefusal {
            message_zh: refusal_zh(&r.code).into(),
            field_zh: field.as_deref().and_then(|f| field_zh(kind, f)),
            field,
            code: r.code.clone(),
            at_ms: r.at,
        }
    }
}

/// The Chinese text of a refusal code; a code this version does not know (a newer server) gets
/// a general message.
pub(crate) fn refusal_zh(code: &str) -> &'static str {
    sanjin_core::protocol::RefusalCode::parse(code).map_or(
        "服务器拒收了这条记录；请联系机关工作人员，并告知记录编号",
        |c| c.zh(),
    )
}

/// The Chinese label of a field a refusal names (`status` is the workflow state).
pub(crate) fn field_zh(kind: RecordKind, field: &str) -> Option<String> {
    match sanjin_core::schema::field(kind, field) {
        Some(spec) => Some(spec.zh.into()),
        None if field == "status" => Some("状态".into()),
        None => None,
    }
}

impl RecordDetail {
    pub(crate) fn of(
        view: RecordView,
        history: Vec<HistoryEntry>,
        photos: Vec<Photo>,
        refusal: Option<RecordRefusal>,
    ) -> Result<Self, ApiError> {
        let data = serde_json::to_value(&view.data).map_err(|_| ApiError::internal())?;
        let fields = sanjin_core::schema::fields(view.kind)
            .iter()
            .map(|f| FieldValue {
                name: f.name.into(),
                label_zh: f.zh.into(),
                value_json: data.get(f.name).map_or("null".into(), |v| v.to_string()),
            })
            .collect();
        Ok(RecordDetail {
            id: view.id,
            kind: view.kind.into(),
            status: view.status.code().into(),
            status_zh: view.status.zh().into(),
            deleted: view.deleted,
            created_by: view.created_by,
            created_device: view.created_device,
            created_at_ms: view.created_at_ms,
            fields,
            data_json: data.to_string(),
            conflicts: view
                .conflicts
                .into_iter()
                .map(|c| FieldConflict {
                    field: c.field,
                    shown_json: c.shown.to_string(),
                    values: c
                        .values
                        .into_iter()
                        .map(|v| ConflictValue {
                            value_json: v.value.to_string(),
                            member: v.member,
                            device: v.device,
                            at_ms: v.at_ms,
                        })
                        .collect(),
                })
                .collect(),
            events: view
                .events
                .into_iter()
                .map(|e| WorkflowEvent {
                    event: e.event.code().into(),
                    member: e.member,
                    device: e.device,
                    at_ms: e.at_ms,
                    note: e.note,
                    to: e.to.map(|s| s.code().into()),
                    applied: e.applied,
                })
                .collect(),
            history: history
                .into_iter()
                .map(|h| HistoryChange {
                    hash: h.hash,
                    member: h.member,
                    device: h.device,
                    at_ms: h.at_ms,
                    action: h.action,
                    fields: h.fields,
                })
                .collect(),
            photos,
            refusal,
            delivered: false,
        })
    }
}

/// One field of a kind, for building forms and detail screens.
#[derive(Debug, Clone, uniffi::Record)]
pub struct FieldInfo {
    pub name: String,
    pub label_zh: String,
    /// How it is edited and merged: `scalar`, `json` (conflict like a scalar), `text` (merges by
    /// characters), `set` / `keyed_set` (add and remove), `log` (append).
    pub storage: String,
}

/// Who the store belongs to.
#[derive(Debug, Clone, uniffi::Record)]
pub struct DeviceIdentity {
    pub member: String,
    pub device: String,
}

/// What the device is enrolled as, on which server.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Enrollment {
    pub server: String,
    pub device_id: String,
    pub device_name: String,
    pub member: String,
    /// `member`, `leader`, `staff` or `admin`.
    pub role: String,
    pub group: Option<String>,
    pub pinned_certificate: bool,
}

impl From<sanjin_client::Enrollment> for Enrollment {
    fn from(e: sanjin_client::Enrollment) -> Self {
        Enrollment {
            server: e.server,
            device_id: e.device_id,
            device_name: e.device_name,
            member: e.member,
            role: e.role,
            group: e.group,
            pinned_certificate: e.pinned_certificate,
        }
    }
}

/// What merging another device's store file did.
#[derive(Debug, Clone, uniffi::Record)]
pub struct MergeSummary {
    pub added: u32,
    pub updated: u32,
    pub unchanged: u32,
    /// Records that became conflicted by the merge.
    pub new_conflicts: Vec<String>,
    /// Ids of records of the other file that could not be read (skipped, not fatal).
    pub skipped: Vec<String>,
}

/// The link the phone is on, as the app's connectivity monitor sees it. The photo policy
/// (`wifi-only` originals) reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum LinkType {
    /// No network, or the app does not know yet.
    Offline,
    /// Mobile data (metered: thumbnails only under `wifi-only`).
    Cellular,
    /// Wi-Fi or another unmetered link.
    Wifi,
}

/// Where a photo to attach comes from: a file (a camera intent's output, a copied picker file)
/// or bytes in memory (a picker's data). The format is detected from the content, never from a
/// file name: JPEG, PNG or WebP.
#[derive(Debug, Clone, uniffi::Enum)]
pub enum PhotoSource {
    Path { path: String },
    Bytes { bytes: Vec<u8> },
}

/// When originals of photos go to the server during `sync`. Thumbnails always travel with
/// their records, on any link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum PhotoPolicy {
    /// On any link.
    Now,
    /// Only while the link type (`set_link_type`) is `Wifi`.
    WifiOnly,
    /// Not now: the originals wait on the device.
    Never,
}

impl From<PhotoPolicy> for sanjin_client::PhotoPolicy {
    fn from(p: PhotoPolicy) -> Self {
        match p {
            PhotoPolicy::Now => sanjin_client::PhotoPolicy::Now,
            PhotoPolicy::WifiOnly => sanjin_client::PhotoPolicy::WifiOnly,
            PhotoPolicy::Never => sanjin_client::PhotoPolicy::Never,
        }
    }
}

/// Where a photo was taken (EXIF GPS), WGS-84 degrees, south and west negative.
#[derive(Debug, Clone, Copy, PartialEq, uniffi::Record)]
pub struct PhotoGps {
    pub lat: f64,
    pub lon: f64,
}

/// A photo of a record.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Photo {
    /// The content address of the original (SHA-256, 64 lowercase hex digits).
    pub hash: String,
    pub caption: String,
    /// The original's size in bytes (0 if the record does not say).
    pub size_bytes: u64,
    /// As shown (EXIF orientation applied); 0 if unknown.
    pub width: u32,
    pub height: u32,
    /// `image/jpeg`, `image/png` or `image/webp`.
    pub mime: String,
    /// When it was taken, from EXIF (`2026-05-19T09:41:00`, the camera's clock, no zone).
    pub taken_at: Option<String>,
    pub gps: Option<PhotoGps>,
    /// Whether the record carries its thumbnail (`photo_thumbnail` returns it).
    pub has_thumbnail: bool,
    /// Whether the original still waits in **this device's** outbox for the server. False on
    /// every other device (there, the original is on the server or on the phone that took it).
    pub original_pending: bool,
}

impl Photo {
    pub(crate) fn of(p: PhotoRef, has_thumbnail: bool, original_pending: bool) -> Self {
        Photo {
            taken_at: p
                .taken_at
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string()),
            gps: p.gps.map(|g| PhotoGps {
                lat: g.lat,
                lon: g.lon,
            }),
            hash: p.hash,
            caption: p.caption,
            size_bytes: p.bytes,
            width: p.width,
            height: p.height,
            mime: p.mime,
            has_thumbnail,
            original_pending,
        }
    }
}
