//! Opening the server's data folder: the storage, the server's key, and the one-time vouching
//! for history and photo originals from before signatures. Its own module because it wires
//! `data`, `key`, `trust` and `blobs` together, so that `data` depends on none of the others.

use std::collections::HashMap;
use std::path::Path;

use sanjin_store::Identity;
use sanjin_store::server::{ServerStorage, SqliteServerStorage};

use crate::data::{BLOBS_DIR, DB_FILE, SERVER_ID, ServerData, random};
use crate::error::{Error, Result, io_err};
use crate::model::Limits;

impl ServerData {
    /// Opens the data folder, creating it (database, server tables, epoch, `blobs/`) on first use.
    pub fn open(dir: &Path) -> Result<ServerData> {
        Self::open_with(dir, Limits::default())
    }

    pub fn open_with(dir: &Path, limits: Limits) -> Result<ServerData> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join(DB_FILE);
        let identity = Identity {
            member: SERVER_ID.into(),
            device: SERVER_ID.into(),
            actor: random::<16>().to_vec(),
        };
        let storage = SqliteServerStorage::open(&path, &identity).map_err(|e| match e {
            sanjin_store::Error::NotServerData(p) => Error::NotServerData(p),
            sanjin_store::Error::NewerServerSchema { found, supported } => {
                Error::NewerSchema { found, supported }
            }
            other => Error::Store(other),
        })?;
        Self::with_storage(Box::new(storage), dir, limits)
    }

    /// The server's data on `storage` (the SQLite file of [`ServerData::open`], or another
    /// [`ServerStorage`] such as `sanjin_store::server::MemoryServerStorage`), with its photo
    /// originals in `dir`'s `blobs/`. Makes the server's key on first use and vouches once for
    /// history and originals from before signatures.
    pub fn with_storage(
        storage: Box<dyn ServerStorage>,
        dir: &Path,
        limits: Limits,
    ) -> Result<ServerData> {
        let blobs = dir.join(BLOBS_DIR);
        std::fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
        let mut storage = storage;
        let epoch = storage.server_meta("epoch")?.unwrap_or_default();
        let epoch = hex::decode(&epoch)
            .ok()
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .ok_or_else(|| Error::Invalid(format!("the server epoch `{epoch}` is damaged")))?;
        let key = crate::key::load_or_make_key(storage.as_mut())?;
        let mut data = ServerData {
            store: storage,
            dir: dir.to_path_buf(),
            epoch,
            limits,
            cache: HashMap::new(),
            key,
            facts: std::sync::Mutex::new(None),
        };
        let vouched = data.vouch_history()?;
        if vouched > 0 {
            tracing::info!(
                records = vouched,
                "history from before signatures vouched for by the server's key"
            );
        }
        crate::blobs::vouch_originals_on_disk(&mut data, &blobs)?;
        Ok(data)
    }
}
