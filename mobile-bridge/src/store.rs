//! `DeviceStore`: the member's store on the phone, wrapping `sanjin_store::Store` and the core's
//! record operations. Every method is blocking and returns quickly except `enroll` and `sync`
//! (network), which belong on a background thread.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use sanjin_core::domain::RecordKind;
use sanjin_core::input::{self, EditMode};
use sanjin_core::workflow::EventType;
use sanjin_core::{RecordDoc, schema, validate};
use sanjin_store::{Durability, Filter, Identity, Store, new_device, new_record_id, now_ms};
use serde_json::{Map, Value};

use crate::error::{ApiError, Phase, client_error, core_error, store_error};
use crate::guard::guard;
use crate::sync::{SyncCancel, SyncListener, SyncProgress, SyncReport, SyncSettings};
use crate::types::*;

/// The device store: one SQLite file holding the member's records, the directory, the outbox
/// and the sync credentials.
///
/// Thread-safe: calls from several threads are serialized on one connection, except `sync`,
/// which works on its own connection so that the app stays usable while it runs.
#[derive(uniffi::Object)]
pub struct DeviceStore {
    path: PathBuf,
    /// `None` once closed.
    inner: Mutex<Option<Store>>,
    link: AtomicU8,
}

impl DeviceStore {
    fn new(store: Store) -> Arc<Self> {
        Arc::new(DeviceStore {
            path: store.path().to_path_buf(),
            inner: Mutex::new(Some(store)),
            link: AtomicU8::new(LinkType::Offline as u8),
        })
    }

    /// Runs `f` on the open store. A panic inside is caught here; the connection is then
    /// reopened (rolling back whatever transaction it had open) and the call fails `Internal`.
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut slot = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(store) = slot.as_mut() else {
            return Err(ApiError::closed());
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(store))) {
            Ok(r) => r,
            Err(_) => {
                *slot = None;
                *slot = Store::open(&self.path, Durability::Full).ok();
                Err(ApiError::internal())
            }
        }
    }

    fn kind_of(store: &Store, id: &str) -> Result<RecordKind, ApiError> {
        if !validate::is_id(id) {
            return Err(ApiError::not_found());
        }
        let entry = store.index_entry(id)?.ok_or_else(ApiError::not_found)?;
        RecordKind::parse(&entry.kind).ok_or_else(ApiError::internal)
    }

    /// Saves a new record of the member's: defaults, checks, an optional submit, one transaction.
    fn save_new(
        store: &mut Store,
        kind: RecordKind,
        mut fields: Map<String, Value>,
        submit: bool,
    ) -> Result<String, ApiError> {
        if kind.is_directory() {
            return Err(ApiError::input(
                "kind",
                "directory_kind",
                "目录数据（委员、活动组、联系点等）由机关维护，不能在手机上新建",
            ));
        }
        let now = now_ms();
        let member = store.identity().member.clone();
        input::fill_defaults(kind, &mut fields, &member, input::beijing_date(now));
        let data = input::build(kind, fields).map_err(|e| ApiError::invalid(kind, e))?;
        let id = new_record_id();
        let author = store.author();
        let mut doc =
            RecordDoc::create(&id, &data, &author, now).map_err(|e| core_error(kind, e))?;
        if submit {
            // Checked before saving, so a record that cannot be submitted is not half-done.
            doc.transition(&author, now, EventType::Submit, None)
                .map_err(|e| core_error(kind, e))?;
        }
        store
            .insert(&mut doc, true)
            .map_err(|e| store_error(kind, e))?;
        Ok(id)
    }

    fn create_from(
        &self,
        kind: RecordKind,
        scalars: &[(&str, Option<String>)],
        lists: &[(&str, &[String])],
        submit: bool,
    ) -> Result<String, ApiError> {
        let mut fields = Map::new();
        let bad = |e| ApiError::invalid(kind, e);
        for (name, v) in scalars {
            if let Some(v) = v {
                input::put(kind, &mut fields, name, v).map_err(bad)?;
            }
        }
        for (name, items) in lists {
            input::put_list(kind, &mut fields, name, items).map_err(bad)?;
        }
        self.with(|s| Self::save_new(s, kind, fields, submit))
    }

    /// Changes one record in one transaction; `f` gets the record's kind.
    fn change<T>(
        &self,
        id: &str,
        f: impl FnOnce(RecordKind, &mut RecordDoc, &sanjin_core::Author) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.with(|s| {
            let kind = Self::kind_of(s, id)?;
            let mut failure = None;
            let out = s.update(id, |doc, by| match f(kind, doc, by) {
                Ok(v) => Ok(v),
                Err(e) => {
                    failure = Some(e);
                    // Any error aborts the update; the real one is returned below.
                    Err(sanjin_core::Error::BadId(String::new()))
                }
            });
            match (out, failure) {
                (_, Some(e)) => Err(e),
                (Ok((v, _)), None) => Ok(v),
                (Err(e), None) => Err(store_error(kind, e)),
            }
        })
    }
}

impl DeviceStore {
    /// A record's photos, with whether the thumbnail is there and the original still waits here.
    fn photos_of(store: &Store, doc: &RecordDoc, kind: RecordKind) -> Result<Vec<Photo>, ApiError> {
        let pending: Vec<String> = store.pending_blobs()?.into_iter().map(|b| b.hash).collect();
        Ok(doc
            .photos()
            .map_err(|e| core_error(kind, e))?
            .into_iter()
            .map(|p| {
                let thumb = doc.thumbnail(&p.hash).is_some();
                let waiting = pending.contains(&p.hash.to_ascii_lowercase());
                Photo::of(p, thumb, waiting)
            })
            .collect())
    }

    fn client_link(&self) -> sanjin_client::Link {
        match self.link_type() {
            LinkType::Wifi => sanjin_client::Link::Wifi,
            // Unknown counts as metered: `WifiOnly` holds the originals back.
            LinkType::Cellular | LinkType::Offline => sanjin_client::Link::Cellular,
        }
    }
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

#[uniffi::export]
impl DeviceStore {
    /// Creates a new store for `member` at `path` (the file must not hold a store yet; its
    /// folder must exist). The device gets a fresh id and actor id.
    #[uniffi::constructor]
    pub fn create(path: String, member: String) -> Result<Arc<Self>, ApiError> {
        guard(|| {
            if !validate::is_id(&member) {
                return Err(ApiError::input(
                    "member",
                    "bad_format",
                    "委员编号无效：只能用字母、数字、- 或 _，最长 64 位",
                ));
            }
            let path = PathBuf::from(path);
            if path
                .parent()
                .is_some_and(|d| !d.as_os_str().is_empty() && !d.is_dir())
            {
                return Err(ApiError::FileMissing {
                    message_zh: "数据文件所在的目录不存在".into(),
                });
            }
            let (device, actor) = new_device();
            let identity = Identity {
                member,
                device,
                actor,
            };
            Ok(Self::new(Store::init(&path, &identity, Durability::Full)?))
        })
    }

    /// Opens an existing store (migrating an older layout forward).
    #[uniffi::constructor]
    pub fn open(path: String) -> Result<Arc<Self>, ApiError> {
        guard(|| Ok(Self::new(Store::open(Path::new(&path), Durability::Full)?)))
    }

    /// Closes the store; every later call fails with `StoreClosed`. Closing twice is fine.
    ///
    /// Not called `close`: Kotlin's generated `DeviceStore` is `AutoCloseable`, whose `close()`
    /// frees the Rust object (UniFFI's destroy); a method of that name would not compile
    /// ("conflicting overloads"). `closeStore()` then `close()` (or `use { }`) on Android.
    pub fn close_store(&self) {
        let mut slot = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        *slot = None;
    }

    pub fn identity(&self) -> Result<DeviceIdentity, ApiError> {
        guard(|| {
            self.with(|s| {
                let id = s.identity();
                Ok(DeviceIdentity {
                    member: id.member.clone(),
                    device: id.device.clone(),
                })
            })
        })
    }

    // --- records --------------------------------------------------------------------------

    /// Records a visit; returns its id. `submit` submits it in the same save.
    pub fn record_visit(&self, draft: VisitDraft, submit: bool) -> Result<String, ApiError> {
        guard(|| {
            let d = draft;
            self.create_from(
                RecordKind::Visit,
                &[
                    ("target_kind", some(&d.target_kind)),
                    ("contact_point", some(&d.contact_point)),
                    ("group", some(&d.group)),
                    ("activity_type", some(&d.activity_type)),
                    ("start", some(&d.start)),
                    ("end", some(&d.end)),
                    ("title", some(&d.title)),
                    ("summary", some(&d.summary)),
                    ("gps", d.gps.clone()),
                ],
                &[("participants", &d.participants), ("helpers", &d.helpers)],
                submit,
            )
        })
    }

    /// Records an opinion note; returns its id.
    pub fn record_opinion(&self, draft: OpinionDraft, submit: bool) -> Result<String, ApiError> {
        guard(|| {
            let d = draft;
            self.create_from(
                RecordKind::Opinion,
                &[
                    ("topic", some(&d.topic)),
                    ("opinion_kind", some(&d.opinion_kind)),
                    ("text", some(&d.text)),
                    ("source", d.source.clone()),
                    ("urgency", some(&d.urgency)),
                    ("contact_point", some(&d.contact_point)),
                    ("group", some(&d.group)),
                    ("recorded_on", d.recorded_on.clone()),
                    ("visit", d.visit.clone()),
                ],
                &[],
                submit,
            )
        })
    }

    /// Records a household under pair assistance; returns its id.
    pub fn record_household(&self, draft: HouseholdDraft) -> Result<String, ApiError> {
        guard(|| {
            let d = draft;
            self.create_from(
                RecordKind::Household,
                &[
                    ("head_name", some(&d.head_name)),
                    ("contact_point", some(&d.contact_point)),
                    ("group", some(&d.group)),
                    ("address", some(&d.address)),
                    ("size", Some(d.size.to_string())),
                    ("situation", some(&d.situation)),
                ],
                &[("assisting_members", &d.assisting_members)],
                false,
            )
        })
    }

    /// Records a plan item; returns its id.
    pub fn record_plan(&self, draft: PlanDraft) -> Result<String, ApiError> {
        guard(|| {
            let d = draft;
            self.create_from(
                RecordKind::Plan,
                &[
                    ("year", Some(d.year.to_string())),
                    ("quarter", Some(d.quarter.to_string())),
                    ("month", Some(d.month.to_string())),
                    ("owner", d.owner.clone()),
                    ("group", some(&d.group)),
                    ("activity_type", some(&d.activity_type)),
                    ("title", some(&d.title)),
                    ("contact_point", d.contact_point.clone()),
                ],
                &[],
                false,
            )
        })
    }

    /// Records a visit, opinion, household or plan item given as one JSON object of its fields
    /// (the shape of `RecordDetail.data_json`); returns its id.
    pub fn record_json(&self, kind: Kind, json: String, submit: bool) -> Result<String, ApiError> {
        guard(|| {
            let kind = RecordKind::from(kind);
            let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(&json) else {
                return Err(ApiError::input(
                    "record",
                    "bad_format",
                    "记录内容应为一个 JSON 对象（{…}），列出记录的各个字段",
                ));
            };
            if let Some(k) = fields.remove("kind")
                && k.as_str() != Some(kind.code())
            {
                return Err(ApiError::input(
                    "kind",
                    "kind_mismatch",
                    "记录内容中的类别与所选类别不符",
                ));
            }
            self.with(|s| Self::save_new(s, kind, fields, submit))
        })
    }

    /// A record with its fields, open conflicts, workflow events and history.
    pub fn show(&self, id: String) -> Result<RecordDetail, ApiError> {
        guard(|| {
            self.with(|s| {
                let kind = Self::kind_of(s, &id)?;
                let mut doc = s.load(&id).map_err(|e| store_error(kind, e))?;
                let view = doc.view().map_err(|e| core_error(kind, e))?;
                let photos = Self::photos_of(s, &doc, kind)?;
                let refusal = s
                    .standing_refusal(&id)?
                    .map(|r| RecordRefusal::of(kind, &r));
                // Issue 13: the unit an opinion went to, by its name in this device's directory.
                let unit_name = |unit: &str| -> Option<String> {
                    let mut d = s.load(unit).ok()?;
                    match d.view().ok()?.data {
                        sanjin_core::RecordData::Unit(u) => Some(u.name),
                        _ => None,
                    }
                };
                let mut detail =
                    RecordDetail::of(view, doc.history(), photos, refusal, &unit_name)?;
                detail.delivered = s.server_public()?.is_some() && s.delivered(&id)?;
                Ok(detail)
            })
        })
    }

    /// Lists records, newest first, from the index (no document is opened).
    pub fn list(&self, filter: ListFilter) -> Result<Vec<RecordSummary>, ApiError> {
        guard(|| {
            let f = filter;
            let (from, to) = match &f.month {
                Some(m) => {
                    let (a, b) = input::month_range(m).ok_or_else(|| {
                        ApiError::input(
                            "month",
                            "bad_format",
                            "月份格式不对，应为 2026-05 这样的形式",
                        )
                    })?;
                    (Some(a.to_string()), Some(b.to_string()))
                }
                None => (f.from.clone(), f.to.clone()),
            };
            for (field, d) in [("from", &from), ("to", &to)] {
                if d.as_deref()
                    .is_some_and(|d| validate::parse_date(d).is_none())
                {
                    return Err(ApiError::input(
                        field,
                        "bad_format",
                        "日期格式不对，应为 2026-05-19 这样的形式",
                    ));
                }
            }
            let filter = Filter {
                kind: Some(f.kind.into()),
                from,
                to,
                group: f.group,
                contact_point: f.contact_point,
                member: f.member,
                type_code: f.type_code,
                target_kind: f.target_kind,
                status: f.status,
                only_conflicts: f.only_conflicts,
                include_deleted: f.include_deleted,
                // With `refused_only` the limit applies to the refused rows.
                limit: f.limit.filter(|_| !f.refused_only).map(|l| l as usize),
                // A device holds only what it may read.
                scope: None,
            };
            self.with(|s| {
                let refused: HashSet<String> = s
                    .standing_refusals()?
                    .into_iter()
                    .map(|r| r.doc_id)
                    .collect();
                // 已送达 (issue 12): only an enrolled device has a server to deliver to.
                let undelivered = match s.server_public()? {
                    Some(_) => Some(s.undelivered()?),
                    None => None,
                };
                let rows = s.list(&filter)?.into_iter().map(|e| {
                    let mut row = RecordSummary::from(e);
                    row.refused = refused.contains(&row.id);
                    row.delivered = undelivered.as_ref().is_some_and(|u| !u.contains(&row.id));
                    row
                });
                Ok(if f.refused_only {
                    rows.filter(|r| r.refused)
                        .take(f.limit.map_or(usize::MAX, |l| l as usize))
                        .collect()
                } else {
                    rows.collect()
                })
            })
        })
    }

    /// Applies edits to one record as one change (all or none).
    pub fn edit(&self, id: String, edits: Vec<FieldEdit>) -> Result<(), ApiError> {
        guard(|| {
            self.change(&id, |kind, doc, by| {
                let parsed = edits
                    .iter()
                    .map(|e| {
                        let (field, value, mode) = match e {
                            FieldEdit::Set { field, value } => (field, value, EditMode::Set),
                            FieldEdit::Add { field, value } => (field, value, EditMode::Add),
                            FieldEdit::Remove { field, value } => (field, value, EditMode::Remove),
                            FieldEdit::Append { field, value } => (field, value, EditMode::Append),
                        };
                        input::parse_edit(kind, field, value, mode)
                            .map_err(|e| ApiError::invalid(kind, e))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                doc.edit(by, now_ms(), &parsed)
                    .map_err(|e| core_error(kind, e))?;
                Ok(())
            })
        })
    }

    /// Resolves a conflict on `field` (or `status`) by choosing `value`.
    pub fn resolve(&self, id: String, field: String, value: String) -> Result<(), ApiError> {
        guard(|| {
            self.change(&id, |kind, doc, by| {
                let (field, value) = input::parse_resolution(kind, &field, &value)
                    .map_err(|e| ApiError::invalid(kind, e))?;
                doc.resolve(by, now_ms(), &field, value)
                    .map_err(|e| core_error(kind, e))?;
                Ok(())
            })
        })
    }

    /// Takes a workflow step; returns the state code reached (`submitted`, `approved`, …).
    pub fn step(&self, id: String, step: Step, note: Option<String>) -> Result<String, ApiError> {
        guard(|| {
            let event = EventType::parse(step.code()).ok_or_else(ApiError::internal)?;
            self.change(&id, |kind, doc, by| {
                let state = doc
                    .transition(by, now_ms(), event, note.as_deref())
                    .map_err(|e| core_error(kind, e))?;
                Ok(state.code().to_string())
            })
        })
    }

    /// Marks a record deleted (a tombstone: it and its history stay, and it can be restored).
    pub fn delete(&self, id: String, note: Option<String>) -> Result<(), ApiError> {
        guard(|| {
            self.change(&id, |kind, doc, by| {
                doc.delete(by, now_ms(), note.as_deref())
                    .map_err(|e| core_error(kind, e))?;
                Ok(())
            })
        })
    }

    pub fn restore(&self, id: String) -> Result<(), ApiError> {
        guard(|| {
            self.change(&id, |kind, doc, by| {
                doc.restore(by, now_ms()).map_err(|e| core_error(kind, e))?;
                Ok(())
            })
        })
    }

    /// Merges another device's store file directly (no server), e.g. one shared over a cable or
    /// a local transfer. Records it cannot read are skipped and reported, never fatal.
    pub fn merge_from(&self, other_path: String) -> Result<MergeSummary, ApiError> {
        guard(|| {
            let other = PathBuf::from(other_path);
            if !other.is_file() {
                return Err(ApiError::FileMissing {
                    message_zh: "找不到要合并的数据文件".into(),
                });
            }
            if std::fs::canonicalize(&other).ok() == std::fs::canonicalize(&self.path).ok() {
                return Err(ApiError::input(
                    "other_path",
                    "same_store",
                    "不能与自身合并：请选择另一台设备的数据文件",
                ));
            }
            self.with(|s| {
                let r = s.merge_from(&other)?;
                let n = |x: usize| u32::try_from(x).unwrap_or(u32::MAX);
                Ok(MergeSummary {
                    added: n(r.added),
                    updated: n(r.updated),
                    unchanged: n(r.unchanged),
                    new_conflicts: r.new_conflicts,
                    skipped: r.skipped.into_iter().map(|(id, _)| id).collect(),
                })
            })
        })
    }

    /// How many records wait to be sent to the server.
    pub fn pending_uploads(&self) -> Result<u32, ApiError> {
        guard(|| self.with(|s| Ok(u32::try_from(s.outbox()?.len()).unwrap_or(u32::MAX))))
    }

    // --- photos ---------------------------------------------------------------------------

    /// Attaches a photo to a visit: checks it (JPEG, PNG or WebP by content, size limits), reads
    /// its EXIF time and GPS, makes a thumbnail (≤ 25 KB) that goes into the record and syncs
    /// with it, and queues the original in this device's outbox for `sync` (as the photo
    /// policy allows). One transaction; attaching the same photo again changes nothing.
    /// Decoding a phone photo takes a fraction of a second: call it off the main thread.
    pub fn attach_photo(
        &self,
        record_id: String,
        source: PhotoSource,
        caption: String,
    ) -> Result<Photo, ApiError> {
        guard(|| {
            self.with(|s| {
                let src = match &source {
                    PhotoSource::Path { path } => sanjin_client::PhotoSource::Path(Path::new(path)),
                    PhotoSource::Bytes { bytes } => sanjin_client::PhotoSource::Bytes(bytes),
                };
                let a =
                    sanjin_client::attach_photo(s, &record_id, src, &caption).map_err(
                        |e| match e {
                            // `Store` errors carry the record's own kind for field labels.
                            sanjin_client::Error::Store(e) => store_error(RecordKind::Visit, e),
                            e => client_error(e, Phase::Sync),
                        },
                    )?;
                let pending = s.pending_blob_bytes(&a.photo.hash)?.is_some();
                Ok(Photo::of(a.photo, true, pending))
            })
        })
    }

    /// The thumbnail (JPEG, long side 320 px, ≤ 25 KB) of the photo `hash` of a record, for
    /// display. It travels with the record, so every device that has the record has it.
    /// `NotFound` if the record has no such photo thumbnail.
    pub fn photo_thumbnail(&self, record_id: String, hash: String) -> Result<Vec<u8>, ApiError> {
        guard(|| {
            self.with(|s| {
                let kind = Self::kind_of(s, &record_id)?;
                let doc = s.load(&record_id).map_err(|e| store_error(kind, e))?;
                doc.thumbnail(&hash).ok_or_else(ApiError::not_found)
            })
        })
    }

    /// How many photo originals wait on this device for the server.
    pub fn pending_photos(&self) -> Result<u32, ApiError> {
        guard(|| self.with(|s| Ok(u32::try_from(s.pending_blobs()?.len()).unwrap_or(u32::MAX))))
    }

    // --- sync -----------------------------------------------------------------------------

    /// Enrolls the device with `server` using the one-time `code` from the administrator.
    /// `ca_pem` pins the server's self-signed certificate (PEM text); `None` trusts the public
    /// web roots. Network: call from a background thread.
    pub fn enroll(
        &self,
        server: String,
        code: String,
        ca_pem: Option<String>,
        device_name: String,
    ) -> Result<Enrollment, ApiError> {
        guard(|| {
            if code.trim().is_empty() {
                return Err(ApiError::input("code", "empty", "注册码不能为空"));
            }
            self.with(|s| {
                sanjin_client::enroll(s, &server, &code, ca_pem.as_deref(), &device_name)
                    .map(Into::into)
                    .map_err(|e| client_error(e, Phase::Enroll))
            })
        })
    }

    /// The device's enrollment, if it has one.
    pub fn enrollment(&self) -> Result<Option<Enrollment>, ApiError> {
        guard(|| {
            self.with(|s| {
                sanjin_client::enrollment(s)
                    .map(|e| e.map(Into::into))
                    .map_err(|e| client_error(e, Phase::Sync))
            })
        })
    }

    /// Pushes what the server lacks and pulls what is new in the member's scope, usually in one
    /// round trip. Blocking: call it from a background thread. It runs on its own connection,
    /// so other calls (saving a record, listing) keep working meanwhile. `listener` hears the
    /// progress; `cancel` stops it between round trips (`ApiError::Cancelled`); `settings`
    /// tunes it for weak links.
    #[uniffi::method(default(listener = None, cancel = None, settings = None))]
    pub fn sync(
        &self,
        listener: Option<Box<dyn SyncListener>>,
        cancel: Option<Arc<SyncCancel>>,
        settings: Option<SyncSettings>,
    ) -> Result<SyncReport, ApiError> {
        guard(|| {
            self.with(|_| Ok(()))?;
            let settings = settings.unwrap_or_default();
            let mut opts = sanjin_client::SyncOptions {
                cancel: cancel.map(|c| c.flag.clone()),
                ..Default::default()
            };
            if let Some(b) = settings.batch_bytes {
                if b < 1024 {
                    return Err(ApiError::input(
                        "batch_bytes",
                        "out_of_range",
                        "每次上传的字节数至少为 1024",
                    ));
                }
                opts.batch_limit_bytes = b as usize;
            }
            if let Some(t) = settings.timeout_seconds {
                if t == 0 {
                    return Err(ApiError::input(
                        "timeout_seconds",
                        "out_of_range",
                        "超时时间至少为 1 秒",
                    ));
                }
                opts.timeout = std::time::Duration::from_secs(t.into());
            }
            let blob_opts = sanjin_client::BlobOptions {
                policy: settings.photos.unwrap_or(PhotoPolicy::WifiOnly).into(),
                link: self.client_link(),
                cancel: opts.cancel.clone(),
                ..Default::default()
            };
            let mut store = Store::open(&self.path, Durability::Full)?;
            // The records, then the originals as the policy allows on this link (resumable,
            // idempotent): the client's one flow, as the CLI runs it.
            let mut progress = |p: sanjin_client::FlowProgress| {
                if let Some(l) = &listener {
                    l.on_progress(SyncProgress::of(p, blob_opts.retries));
                }
            };
            let done =
                sanjin_client::sync_then_photos(&mut store, &opts, &blob_opts, &mut progress)
                    .map_err(|e| client_error(*e.error, Phase::Sync))?;
            SyncReport::of(&store, done.records, done.photos)
        })
    }

    /// Tells the core which link the phone is on (from the app's connectivity monitor); `sync`
    /// under the photo policy `WifiOnly` sends originals only on `Wifi` (`Offline`, i.e.
    /// unknown, counts as metered).
    pub fn set_link_type(&self, link: LinkType) {
        self.link.store(link as u8, Ordering::Relaxed);
    }

    pub fn link_type(&self) -> LinkType {
        match self.link.load(Ordering::Relaxed) {
            x if x == LinkType::Wifi as u8 => LinkType::Wifi,
            x if x == LinkType::Cellular as u8 => LinkType::Cellular,
            _ => LinkType::Offline,
        }
    }
}

/// The fields of a kind in display order, for forms and detail screens.
#[uniffi::export]
pub fn record_fields(kind: Kind) -> Vec<FieldInfo> {
    use schema::FieldKind as F;
    schema::fields(kind.into())
        .iter()
        .map(|f| FieldInfo {
            name: f.name.into(),
            label_zh: f.zh.into(),
            storage: match f.kind {
                F::Scalar => "scalar",
                F::Json => "json",
                F::Text => "text",
                F::Set => "set",
                F::KeyedSet => "keyed_set",
                F::Log => "log",
            }
            .into(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 6: a panic inside a store call (here, in the middle of a transaction) becomes
    /// `Internal`; the store is reopened, the half-done write is rolled back, and the next call
    /// works.
    #[test]
    fn a_panic_mid_transaction_reopens_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("phone.sqlite");
        let store = DeviceStore::create(path.display().to_string(), "member-0001".into()).unwrap();
        let r: Result<(), ApiError> = guard(|| {
            store.with(|s| {
                // A panic inside the store's transaction: nothing commits or rolls it back.
                Ok(s.batch(|s| -> Result<(), sanjin_store::Error> {
                    s.set_meta("half_done", Some("x"))?;
                    panic!("a bug while writing")
                })?)
            })
        });
        assert!(matches!(r, Err(ApiError::Internal { .. })), "{r:?}");
        assert_eq!(store.identity().unwrap().member, "member-0001");
        let left = store.with(|s| Ok(s.meta("half_done")?)).unwrap();
        assert_eq!(left, None);
        assert_eq!(store.pending_uploads().unwrap(), 0);
    }

    /// Issue 13: after a sync brings the office's steps (here applied as a pull would), the
    /// record view shows the opinion's unit (by its directory name), due day, handling and
    /// feedback, and each event's unit and due day.
    #[test]
    fn issue13_the_record_view_shows_the_opinions_handling() {
        use sanjin_core::RecordDoc;
        use sanjin_core::domain::{RecordData, Unit};
        use sanjin_core::workflow::{EventType, StepDetails};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("phone.sqlite");
        let store = DeviceStore::create(path.display().to_string(), "member-0001".into()).unwrap();
        let member = sanjin_core::Author::new("member-0001", "phone-x", &[1; 16]).unwrap();
        let staff = sanjin_core::Author::new("office-01", "server", &[9; 16]).unwrap();
        let t0 = 1_747_616_400_000;
        let mut unit = RecordDoc::create(
            "unit-001",
            &RecordData::Unit(Unit {
                name: "市城市管理局".into(),
                chapter: None,
            }),
            &staff,
            t0,
        )
        .unwrap();
        let mut doc = RecordDoc::create(
            "o-1",
            &RecordData::Opinion(sanjin_core::testdata::opinion()),
            &member,
            t0,
        )
        .unwrap();
        doc.transition(&member, t0 + 1, EventType::Submit, None)
            .unwrap();
        doc.transition(&staff, t0 + 2, EventType::Accept, None)
            .unwrap();
        let due = "2025-06-30".parse().unwrap();
        doc.transition_with(
            &staff,
            t0 + 3,
            EventType::Forward,
            &StepDetails {
                unit: Some("unit-001"),
                due: Some(due),
                note: None,
            },
        )
        .unwrap();
        doc.transition(&staff, t0 + 4, EventType::Handle, Some("已清运"))
            .unwrap();
        doc.transition(&staff, t0 + 5, EventType::Feedback, Some("已答复委员"))
            .unwrap();
        store
            .with(|s| {
                s.apply_remote("unit-001", &unit.save())?;
                s.apply_remote("o-1", &doc.save())?;
                Ok(())
            })
            .unwrap();
        let detail = store.show("o-1".into()).unwrap();
        let o = detail.opinion.expect("an opinion's outcome");
        assert_eq!(
            (o.state.as_str(), o.state_zh.as_str()),
            ("feedback_given", "已反馈")
        );
        assert_eq!(o.unit.as_deref(), Some("unit-001"));
        assert_eq!(o.unit_name.as_deref(), Some("市城市管理局"));
        assert_eq!(o.due.as_deref(), Some("2025-06-30"));
        assert_eq!(o.handling.as_deref(), Some("已清运"));
        assert_eq!(o.feedback.as_deref(), Some("已答复委员"));
        assert_eq!(o.feedback_by.as_deref(), Some("office-01"));
        let forward = detail.events.iter().find(|e| e.event == "forward").unwrap();
        assert_eq!(forward.unit.as_deref(), Some("unit-001"));
        assert_eq!(forward.due.as_deref(), Some("2025-06-30"));
        assert!(store.show("unit-001".into()).unwrap().opinion.is_none());
    }
}
