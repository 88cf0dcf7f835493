//! Photo originals (issue 4): content-addressed, resumable blob transfer (docs/PROTOCOL.md,
//! "Blobs"), and who may read them (issue 10).
//!
//! - `GET /v1/blobs/{hash}`: how much of a blob the server holds **for the caller** (`complete`,
//!   `partial` with the bytes the caller's own upload holds, or `absent`), so a device sends only
//!   the rest. `complete` only when a device within the caller's scope has uploaded the blob;
//!   otherwise the answer is the caller's own progress, as if nobody else had the blob.
//! - `PUT /v1/blobs/{hash}?offset=N&size=T`: the bytes from `offset` on. The server writes them
//!   to the caller's partial file **as they arrive**, so a connection cut mid-request keeps what
//!   crossed; once it holds `size` bytes it checks their SHA-256 against `hash` and only then
//!   makes the blob visible (fsync, atomic rename) and records that this device uploaded it. A
//!   corrupt or truncated blob is never kept.
//! - `GET /v1/records/{id}/blobs/{hash}`: the original of a photo of a record in the device's
//!   read scope, resumable with `Range: bytes=N-`.
//!
//! **Proof of possession.** Knowing a hash proves nothing: hashes are in every record that
//! references the photo, in exports and in logs. Sending all of a blob's bytes does. The table
//! `blob_uploads` records which device uploaded which blob, with the device's activity group at
//! that time; an original is served only to a reader who may read a record referencing it *and*
//! whose scope holds an uploader (office accounts: any upload; members and leaders: an upload by
//! a device of their group). One copy on disk serves every scope that proved it; a device of
//! another group that has the bytes uploads them again (resumably, into its own partial file),
//! which costs bandwidth once and stores nothing twice.
//!
//! **Paths.** Every file name is built from a [`BlobHash`] (32 bytes parsed from exactly 64
//! lowercase hex digits) and an [`Uploader`] (16 bytes derived from a device id), never from a
//! string a device sent.
//!
//! Storage is behind [`BlobStore`]; [`FsBlobStore`] keeps blobs in the data folder's `blobs/`.
//! **Invariant:** a file under `blobs/<2 hex>/<hash>` is complete and verified (it got there by
//! a rename after the check); partial uploads live in `blobs/partial/`, one per blob and
//! uploader, until they complete or expire.
//!
//! This module holds the blobs' names, their storage ([`BlobStore`], [`FsBlobStore`]), who may
//! read them and the transfer's locks ([`Blobs`]); `routes` holds the HTTP handlers.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sanjin_core::RecordDoc;
use sanjin_core::domain::RecordKind;
use sanjin_store::now_ms;

use crate::data::{BLOBS_DIR, SERVER_ID, ServerData};
use crate::error::{Error, Result, io_err};
use crate::model::{Account, Role};

mod routes;

pub use routes::{routes, spawn_sweeper};

/// A blob's name: the SHA-256 of its bytes. The only way to name a blob on disk; made only by
/// [`BlobHash::parse`] (exactly 64 lowercase hex digits) or by hashing bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobHash([u8; 32]);

impl BlobHash {
    /// Exactly 64 lowercase hex digits; anything else (upper case, a path, a dot, a slash, a
    /// shorter or longer string) is `None`.
    pub fn parse(s: &str) -> Option<BlobHash> {
        let b = s.as_bytes();
        if b.len() != 64 {
            return None;
        }
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
            *o = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(BlobHash(out))
    }

    /// The hash a photo reference of a record names, if it is one (references written before
    /// hashes were checked may hold upper case: the same blob).
    pub fn of_reference(s: &str) -> Option<BlobHash> {
        BlobHash::parse(&s.to_ascii_lowercase())
    }

    /// The SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> BlobHash {
        let d = ring::digest::digest(&ring::digest::SHA256, bytes);
        BlobHash(d.as_ref().try_into().expect("SHA-256 has 32 bytes"))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({})", self.to_hex())
    }
}

/// Whose partial upload: 16 bytes derived from the uploading device's id, so each device's
/// upload of a blob is a file of its own (its own progress, its own proof) and no device can
/// write into another's.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Uploader([u8; 16]);

impl Uploader {
    pub fn device(device_id: &str) -> Uploader {
        let d = crate::data::sha256(&[b"sanjin-blob-uploader:", device_id.as_bytes()]);
        Uploader(d[..16].try_into().expect("16 of 32 bytes"))
    }

    /// The server itself (an operator's import of an original).
    pub fn server() -> Uploader {
        Uploader::device(SERVER_ID)
    }

    fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Uploader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uploader({})", self.to_hex())
    }
}

/// What the server holds of a blob for one uploader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobState {
    Absent,
    /// An upload in progress (or broken off): this many bytes from the start.
    Partial {
        received: u64,
    },
    /// Verified and visible.
    Complete {
        size: u64,
    },
}

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The bytes do not hash to the blob's address; the partial upload was discarded.
    #[error("the uploaded bytes do not match the hash; the partial upload was discarded")]
    HashMismatch,
    /// The write does not continue where the partial upload ends.
    #[error("the upload continues at {received}, not at {offset}")]
    OffsetMismatch { offset: u64, received: u64 },
    #[error("blob storage: {0}")]
    Io(#[from] io::Error),
}

/// Where blobs live. The filesystem is the embedded default ([`FsBlobStore`]); an object store
/// (S3-compatible) is the other intended implementation. Blocking: the HTTP layer calls it on
/// blocking threads. Blobs are named by [`BlobHash`], partial uploads by hash and [`Uploader`].
pub trait BlobStore: Send + Sync {
    /// The size of the complete blob; `None` if the store does not hold it.
    fn size(&self, hash: &BlobHash) -> io::Result<Option<u64>>;
    /// The bytes `by`'s partial upload of `hash` holds; `None` without one.
    fn partial(&self, hash: &BlobHash, by: &Uploader) -> io::Result<Option<u64>>;
    /// Appends `data` to `by`'s partial upload, which must currently end at `offset`. Returns
    /// the bytes received so far.
    fn append(
        &self,
        hash: &BlobHash,
        by: &Uploader,
        offset: u64,
        data: &[u8],
    ) -> Result<u64, BlobError>;
    /// Makes what was appended durable (fsync).
    fn flush(&self, hash: &BlobHash, by: &Uploader) -> io::Result<()>;
    /// Checks `by`'s partial upload against `hash`: a match becomes the visible blob (if the
    /// blob was already visible, the partial upload is dropped: its bytes are the same); a
    /// mismatch is discarded. Returns the blob's size.
    fn publish(&self, hash: &BlobHash, by: &Uploader) -> Result<u64, BlobError>;
    /// Drops `by`'s partial upload of `hash`, if any.
    fn discard(&self, hash: &BlobHash, by: &Uploader) -> io::Result<()>;
    /// Up to `max` bytes of a complete blob from `start`, and its size; `None` if absent.
    fn read(&self, hash: &BlobHash, start: u64, max: u64) -> io::Result<Option<(Vec<u8>, u64)>>;
    /// Removes partial uploads untouched for `older_than`. Returns how many.
    fn sweep(&self, older_than: Duration) -> io::Result<usize>;

    /// The complete blob, else `by`'s partial upload, else absent.
    fn state(&self, hash: &BlobHash, by: &Uploader) -> io::Result<BlobState> {
        if let Some(size) = self.size(hash)? {
            return Ok(BlobState::Complete { size });
        }
        Ok(match self.partial(hash, by)? {
            Some(received) => BlobState::Partial { received },
            None => BlobState::Absent,
        })
    }
}

/// Blobs as files: `DIR/<first two hex digits>/<hash>`, partial uploads in
/// `DIR/partial/<hash>.<uploader>.part`.
pub struct FsBlobStore {
    dir: PathBuf,
}

impl FsBlobStore {
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<FsBlobStore> {
        let dir = dir.into();
        fs::create_dir_all(dir.join("partial"))?;
        Ok(FsBlobStore { dir })
    }

    fn complete_path(&self, hash: &BlobHash) -> PathBuf {
        let hex = hash.to_hex();
        self.dir.join(&hex[..2]).join(hex)
    }

    fn partial_path(&self, hash: &BlobHash, by: &Uploader) -> PathBuf {
        self.dir
            .join("partial")
            .join(format!("{}.{}.part", hash.to_hex(), by.to_hex()))
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    Ok(())
}

fn sha256_file(path: &Path) -> io::Result<BlobHash> {
    let mut f = File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(BlobHash(
        ctx.finish()
            .as_ref()
            .try_into()
            .expect("SHA-256 has 32 bytes"),
    ))
}

fn len_if_exists(path: &Path) -> io::Result<Option<u64>> {
    match fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(Some(m.len())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl BlobStore for FsBlobStore {
    fn size(&self, hash: &BlobHash) -> io::Result<Option<u64>> {
        len_if_exists(&self.complete_path(hash))
    }

    fn partial(&self, hash: &BlobHash, by: &Uploader) -> io::Result<Option<u64>> {
        len_if_exists(&self.partial_path(hash, by))
    }

    fn append(
        &self,
        hash: &BlobHash,
        by: &Uploader,
        offset: u64,
        data: &[u8],
    ) -> Result<u64, BlobError> {
        let path = self.partial_path(hash, by);
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        let received = f.seek(SeekFrom::End(0))?;
        if received != offset {
            return Err(BlobError::OffsetMismatch { offset, received });
        }
        f.write_all(data)?;
        Ok(received + data.len() as u64)
    }

    fn flush(&self, hash: &BlobHash, by: &Uploader) -> io::Result<()> {
        match File::open(self.partial_path(hash, by)) {
            Ok(f) => f.sync_all(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn publish(&self, hash: &BlobHash, by: &Uploader) -> Result<u64, BlobError> {
        let partial = self.partial_path(hash, by);
        let partial_dir = self.dir.join("partial");
        File::open(&partial)?.sync_all()?;
        if sha256_file(&partial)? != *hash {
            fs::remove_file(&partial)?;
            return Err(BlobError::HashMismatch);
        }
        let size = fs::metadata(&partial)?.len();
        let target = self.complete_path(hash);
        if len_if_exists(&target)?.is_some() {
            // Another uploader's copy is in place: the same bytes, kept once.
            fs::remove_file(&partial)?;
            sync_dir(&partial_dir)?;
            return Ok(size);
        }
        let parent = target.parent().expect("blob paths have a parent");
        fs::create_dir_all(parent)?;
        fs::rename(&partial, &target)?;
        sync_dir(parent)?;
        sync_dir(&partial_dir)?;
        Ok(size)
    }

    fn discard(&self, hash: &BlobHash, by: &Uploader) -> io::Result<()> {
        match fs::remove_file(self.partial_path(hash, by)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn read(&self, hash: &BlobHash, start: u64, max: u64) -> io::Result<Option<(Vec<u8>, u64)>> {
        let mut f = match File::open(self.complete_path(hash)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let size = f.metadata()?.len();
        let start = start.min(size);
        f.seek(SeekFrom::Start(start))?;
        let mut out = Vec::with_capacity((size - start).min(max) as usize);
        f.take(max).read_to_end(&mut out)?;
        Ok(Some((out, size)))
    }

    fn sweep(&self, older_than: Duration) -> io::Result<usize> {
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in fs::read_dir(self.dir.join("partial"))? {
            let entry = entry?;
            let modified = entry.metadata()?.modified()?;
            if now.duration_since(modified).unwrap_or_default() >= older_than {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

// ------------------------------------------------------------------ proof of possession

/// Once, when the server's table of uploads is new (`META_BLOB_UPLOADS_NEW`, set by the
/// storage's migration that creates it): a data folder from before issue 10 holds originals
/// nobody is recorded as having uploaded. They are vouched for once, for the scopes that could
/// read them then: the office, and the group of every record that references them (as the
/// history on the server is vouched for at the same upgrade). From then on only an upload
/// proves possession, so a hash copied into a record later opens nothing.
pub(crate) fn vouch_originals_on_disk(data: &mut ServerData, blobs_dir: &Path) -> Result<()> {
    use sanjin_store::server::META_BLOB_UPLOADS_NEW;
    if data.store.server_meta(META_BLOB_UPLOADS_NEW)?.is_none() {
        return Ok(());
    }
    let on_disk = complete_blobs(blobs_dir).map_err(io_err(blobs_dir))?;
    let mut scopes: Vec<(BlobHash, String)> = on_disk.iter().map(|h| (*h, String::new())).collect();
    if !on_disk.is_empty() {
        for (id, kind) in data.store.ids()? {
            let Some(kind) = RecordKind::parse(&kind) else {
                continue;
            };
            if sanjin_core::schema::field(kind, "photos").is_none() {
                continue;
            }
            let Some(group) = data.store.index_entry(&id)?.and_then(|e| e.group) else {
                continue;
            };
            let photos = match data.store.load(&id).map(|d| d.photos()) {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => {
                    tracing::warn!(doc = %id, error = %e, "photos unreadable; not vouched");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(doc = %id, error = %e, "record unreadable; not vouched");
                    continue;
                }
            };
            for p in photos {
                if let Some(h) = BlobHash::of_reference(&p.hash)
                    && on_disk.contains(&h)
                {
                    scopes.push((h, group.clone()));
                }
            }
        }
    }
    let at = now_ms();
    data.atomically(|d| -> Result<()> {
        for (h, scope) in &scopes {
            d.store.record_upload(h.as_bytes(), SERVER_ID, scope, at)?;
        }
        d.store.set_server_meta(META_BLOB_UPLOADS_NEW, None)?;
        Ok(())
    })?;
    if !on_disk.is_empty() {
        tracing::info!(
            blobs = on_disk.len(),
            scopes = scopes.len(),
            "originals already on the server vouched for their readers"
        );
    }
    Ok(())
}

/// The complete blobs in a blob folder (`<2 hex>/<hash>`), by name.
fn complete_blobs(dir: &Path) -> io::Result<std::collections::HashSet<BlobHash>> {
    let mut out = std::collections::HashSet::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for shard in entries {
        let shard = shard?;
        if !shard.file_type()?.is_dir() || shard.file_name().len() != 2 {
            continue;
        }
        for f in fs::read_dir(shard.path())? {
            let f = f?;
            if let Some(h) = f.file_name().to_str().and_then(BlobHash::parse)
                && f.file_type()?.is_file()
            {
                out.insert(h);
            }
        }
    }
    Ok(out)
}

/// Whose originals a reader may open: the scope that must hold an uploader of the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobReader<'a> {
    /// Staff and admins: a blob any device uploaded.
    Office,
    /// Members and leaders: a blob a device of this group uploaded.
    Group(&'a str),
    /// Nobody's uploads count (an account without a group).
    Nobody,
}

impl<'a> BlobReader<'a> {
    pub fn of(account: &'a Account) -> BlobReader<'a> {
        match (account.role, account.group.as_deref()) {
            (Role::Staff | Role::Admin, _) => BlobReader::Office,
            (Role::Member | Role::Leader, Some(g)) if !g.is_empty() => BlobReader::Group(g),
            _ => BlobReader::Nobody,
        }
    }
}

/// The scope an upload by `account` proves possession for.
fn upload_scope(account: &Account) -> &str {
    match BlobReader::of(account) {
        BlobReader::Group(g) => g,
        BlobReader::Office | BlobReader::Nobody => "",
    }
}

/// Whether a record's document references `hash` among its photos.
pub(crate) fn references(doc: &RecordDoc, hash: &BlobHash) -> Result<bool> {
    Ok(doc
        .photos()?
        .iter()
        .any(|p| BlobHash::of_reference(&p.hash).as_ref() == Some(hash)))
}

impl ServerData {
    /// Records that `device_id` (of `account`) sent all the bytes of `hash`, verified.
    pub(crate) fn record_upload(
        &mut self,
        hash: &BlobHash,
        device_id: &str,
        account: &Account,
    ) -> Result<()> {
        self.record_upload_in(hash, device_id, upload_scope(account))
    }

    fn record_upload_in(&mut self, hash: &BlobHash, device_id: &str, scope: &str) -> Result<()> {
        self.store
            .record_upload(hash.as_bytes(), device_id, scope, now_ms())?;
        Ok(())
    }

    /// Whether a device within `reader`'s scope has uploaded `hash` (proof of possession).
    pub fn blob_proven_for(&self, hash: &BlobHash, reader: BlobReader<'_>) -> Result<bool> {
        let h = hash.as_bytes();
        Ok(match reader {
            BlobReader::Office => self.store.upload_exists(h, None)?,
            BlobReader::Group(g) => self.store.upload_exists(h, Some(g))?,
            BlobReader::Nobody => false,
        })
    }

    /// The devices that uploaded `hash`, with the scope each upload proved (`""`: office).
    pub fn blob_uploaders(&self, hash: &BlobHash) -> Result<Vec<(String, String)>> {
        Ok(self.store.uploads(hash.as_bytes())?)
    }

    /// An operator's import of an original into the data folder's `blobs/` (for example the
    /// originals of records imported from an older system, or copied from a phone's backup), on
    /// behalf of `group`'s readers (`None`: office staff only). Recorded as uploaded by the
    /// server. Returns the blob's hash.
    pub fn import_blob(&mut self, bytes: &[u8], group: Option<&str>) -> Result<BlobHash> {
        let dir = self.dir.join(BLOBS_DIR);
        let store = FsBlobStore::new(&dir).map_err(io_err(&dir))?;
        let hash = BlobHash::of(bytes);
        let by = Uploader::server();
        let blob_err = |e: BlobError| Error::Invalid(format!("importing blob {hash}: {e}"));
        store.discard(&hash, &by).map_err(io_err(&dir))?;
        store.append(&hash, &by, 0, bytes).map_err(blob_err)?;
        store.publish(&hash, &by).map_err(blob_err)?;
        self.record_upload_in(&hash, SERVER_ID, group.unwrap_or(""))?;
        Ok(hash)
    }
}

// ------------------------------------------------------------------ transfer

/// One lock per blob and uploader.
type UploadLocks = HashMap<(BlobHash, Uploader), Arc<tokio::sync::Mutex<()>>>;

/// The blob side of the server's state: the store and one lock per blob and uploader, so two
/// requests of one device for the same blob (a retry racing a dying connection) take turns.
pub struct Blobs {
    store: Arc<dyn BlobStore>,
    locks: Mutex<UploadLocks>,
    max_blob_bytes: u64,
    partial_ttl: Duration,
}

impl Blobs {
    pub fn new(store: Arc<dyn BlobStore>, max_blob_bytes: u64, partial_ttl: Duration) -> Blobs {
        Blobs {
            store,
            locks: Mutex::new(HashMap::new()),
            max_blob_bytes,
            partial_ttl,
        }
    }

    pub fn store(&self) -> &Arc<dyn BlobStore> {
        &self.store
    }

    fn lock_for(&self, hash: BlobHash, by: Uploader) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry((hash, by)).or_default().clone()
    }

    /// Removes expired partial uploads now (and logs how many).
    pub async fn sweep(&self) {
        let store = self.store.clone();
        let ttl = self.partial_ttl;
        match tokio::task::spawn_blocking(move || store.sweep(ttl)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(removed = n, "expired partial uploads removed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "sweeping partial uploads failed"),
            Err(e) => tracing::warn!(error = %e, "sweeping partial uploads failed"),
        }
    }
}

/// Sweeps expired partial uploads at start-up and then every quarter of their lifetime (at most
/// hourly), until the runtime stops.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_exactly_64_lowercase_hex_digits() {
        let good = "0123456789abcdef".repeat(4);
        assert_eq!(BlobHash::parse(&good).unwrap().to_hex(), good);
        for bad in [
            "",
            "/etc/ssl/private/key.pem",
            "../../sanjin.sqlite",
            &"0123456789ABCDEF".repeat(4),
            &format!("{}0", good),
            &good[1..],
            &format!("/{}", &good[1..]),
            &format!("{}/", &good[..63]),
            &format!("{}.", &good[..63]),
            &format!("{}\0", &good[..63]),
            &"é".repeat(32),
        ] {
            assert!(BlobHash::parse(bad).is_none(), "{bad:?}");
        }
        assert_eq!(
            BlobHash::of_reference(&good.to_ascii_uppercase()),
            BlobHash::parse(&good)
        );
        assert_eq!(BlobHash::of(b"abc").to_hex(), sanjin_media::hash(b"abc"));
    }

    #[test]
    fn every_path_stays_inside_the_blob_folder() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::new(dir.path()).unwrap();
        let h = BlobHash::of(b"x");
        let by = Uploader::device("../../../../etc/passwd");
        for p in [store.complete_path(&h), store.partial_path(&h, &by)] {
            assert!(p.starts_with(dir.path()), "{}", p.display());
            assert!(
                p.strip_prefix(dir.path())
                    .unwrap()
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_))),
                "{}",
                p.display()
            );
        }
    }

    #[test]
    fn each_uploader_has_its_own_partial_upload_and_one_copy_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::new(dir.path()).unwrap();
        let bytes = b"the same photo, uploaded twice".to_vec();
        let h = BlobHash::of(&bytes);
        let (a, b) = (Uploader::device("phone-a"), Uploader::device("phone-b"));
        store.append(&h, &a, 0, &bytes[..10]).unwrap();
        assert_eq!(store.partial(&h, &a).unwrap(), Some(10));
        assert_eq!(
            store.partial(&h, &b).unwrap(),
            None,
            "b sees nothing of a's"
        );
        assert!(matches!(
            store.append(&h, &b, 10, &bytes[10..]),
            Err(BlobError::OffsetMismatch { received: 0, .. })
        ));
        store.append(&h, &a, 10, &bytes[10..]).unwrap();
        assert_eq!(store.publish(&h, &a).unwrap(), bytes.len() as u64);
        store.append(&h, &b, 0, &bytes).unwrap();
        assert_eq!(store.publish(&h, &b).unwrap(), bytes.len() as u64);
        assert_eq!(store.partial(&h, &b).unwrap(), None);
        assert_eq!(store.read(&h, 0, u64::MAX).unwrap().unwrap().0, bytes);
        // A wrong copy by a third uploader is discarded and leaves the good one alone.
        let c = Uploader::device("phone-c");
        store
            .append(&h, &c, 0, b"something else entirely!!!!!!!")
            .unwrap();
        assert!(matches!(
            store.publish(&h, &c),
            Err(BlobError::HashMismatch)
        ));
        assert_eq!(store.read(&h, 0, u64::MAX).unwrap().unwrap().0, bytes);
    }
}
