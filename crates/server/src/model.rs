//! The server's own data: roles, accounts, devices, enrollment, limits.

use serde::{Deserialize, Serialize};

use sanjin_core::IndexEntry;
use sanjin_core::domain::RecordKind;
use sanjin_store::ReadScope;

/// What an account may do.
///
/// - `member`: write its own group's records, read them and the directory.
/// - `leader`: a member who also reviews: return/approve/resolve and opinion handling in its group.
/// - `staff`: read and write everything, directory included; take every workflow step. Staff of
///   a county chapter (an account with a `chapter`, issue 13) only their chapter's: the records
///   of its groups, its directory entries; they read the whole directory.
/// - `admin`: accounts and the directory; reads everything.
///
/// Legal appeals (法律诉求, issue 13): an opinion of kind `legal_appeal` of any group is also read
/// by the members of the legal advisory group and written and handled by its leader
/// (`sanjin_core::rules::also_read_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Member,
    Leader,
    Staff,
    Admin,
}

impl Role {
    pub const ALL: &'static [Role] = &[Role::Member, Role::Leader, Role::Staff, Role::Admin];

    pub fn code(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Leader => "leader",
            Role::Staff => "staff",
            Role::Admin => "admin",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            Role::Member => "委员",
            Role::Leader => "活动组组长",
            Role::Staff => "机关工作人员",
            Role::Admin => "管理员",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        let s = s.trim();
        Self::ALL
            .iter()
            .copied()
            .find(|r| r.code() == s || r.zh() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// An account: one member (or staff, admin) of the CPPCC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    pub member: String,
    pub role: Role,
    /// The activity group of members and leaders.
    pub group: Option<String>,
    pub name: String,
    /// The chapter (政协组织) of staff of a county chapter (issue 13); `None`: the whole city.
    pub chapter: Option<String>,
    /// What the directory says about the account's reach, filled in whenever the server loads
    /// an account (`ServerData::account`, `authenticate`): never stored, never sent.
    #[serde(skip)]
    pub scope: AccountScope,
}

/// Directory facts an account's rights depend on (issue 13), as the server's directory says
/// them when the account was loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountScope {
    /// For staff of a county chapter: the groups of that chapter, by id.
    pub chapter_groups: Vec<String>,
    /// The legal advisory group (`sanjin_core::rules::legal_group`), if the directory has one.
    pub legal_group: Option<String>,
}

impl Account {
    /// An account of `role` with nothing resolved yet (see [`Account::scope`]).
    pub fn new(member: &str, role: Role, group: Option<&str>, name: &str) -> Account {
        Account {
            member: member.into(),
            role,
            group: group.map(str::to_string),
            name: name.into(),
            chapter: None,
            scope: AccountScope::default(),
        }
    }

    /// Staff of a county chapter: reads and writes only that chapter's records (issue 13).
    pub fn county(&self) -> Option<&str> {
        match self.role {
            Role::Staff => self.chapter.as_deref(),
            _ => None,
        }
    }

    /// Whether `group` belongs to the county chapter of this (county staff) account.
    fn in_chapter(&self, group: Option<&str>) -> bool {
        group.is_some_and(|g| self.scope.chapter_groups.iter().any(|x| x == g))
    }

    /// Whether this account may write a record of `kind` in `group` (`None` for the directory).
    /// Staff of a county chapter write no directory record through this (it does not know the
    /// record's chapter): see [`Account::may_write_directory`].
    pub fn may_write(&self, kind: RecordKind, group: Option<&str>) -> bool {
        match self.role {
            Role::Staff if self.chapter.is_some() => !kind.is_directory() && self.in_chapter(group),
            Role::Staff => true,
            Role::Admin => kind.is_directory(),
            Role::Member | Role::Leader => {
                !kind.is_directory() && group.is_some() && self.group.as_deref() == group
            }
        }
    }

    /// Whether this account may write a directory record of `chapter` (the chapter a member,
    /// group, committee, contact point or unit names; a chapter record's own id): city staff and
    /// admins every one, staff of a county chapter their chapter's only.
    pub fn may_write_directory(&self, chapter: Option<&str>) -> bool {
        match self.role {
            Role::Staff => self.chapter.is_none() || self.chapter.as_deref() == chapter,
            Role::Admin => true,
            Role::Member | Role::Leader => false,
        }
    }

    /// Whether this account may read a record of `kind` in `group`. Everyone reads the
    /// directory (phones need it to name people).
    pub fn may_read(&self, kind: RecordKind, group: Option<&str>) -> bool {
        match self.role {
            Role::Staff if self.chapter.is_some() => kind.is_directory() || self.in_chapter(group),
            Role::Staff | Role::Admin => true,
            Role::Member | Role::Leader => {
                kind.is_directory() || (group.is_some() && self.group.as_deref() == group)
            }
        }
    }

    /// The group that reads a record besides its own (the legal advisory group, for a legal
    /// appeal of another group).
    pub fn also_of<'a>(&'a self, entry: &IndexEntry) -> Option<&'a str> {
        let kind = RecordKind::parse(&entry.kind)?;
        sanjin_core::rules::also_read_by(
            kind,
            entry.group.as_deref(),
            entry.type_code.as_deref(),
            self.scope.legal_group.as_deref(),
        )
    }

    /// Whether this account may read the record of this index row: [`Account::may_read`], or
    /// as a member of the legal advisory group, a legal appeal of any group.
    pub fn may_read_entry(&self, entry: &IndexEntry) -> bool {
        let Some(kind) = RecordKind::parse(&entry.kind) else {
            return false;
        };
        self.may_read(kind, entry.group.as_deref())
            || (matches!(self.role, Role::Member | Role::Leader)
                && self.group.is_some()
                && self.also_of(entry) == self.group.as_deref())
    }

    /// Whether this account may write the record of this index row: [`Account::may_write`], or
    /// as the leader of the legal advisory group, a legal appeal of any group.
    pub fn may_write_entry(&self, entry: &IndexEntry) -> bool {
        let Some(kind) = RecordKind::parse(&entry.kind) else {
            return false;
        };
        self.may_write(kind, entry.group.as_deref())
            || self.also_of(entry).is_some_and(|a| self.leads(a))
    }

    /// Whether this account is the leader of `group` by its role.
    pub fn leads(&self, group: &str) -> bool {
        self.role == Role::Leader && self.group.as_deref() == Some(group)
    }

    /// Whether this account reads every change-log entry (city staff and admins).
    pub fn reads_everything(&self) -> bool {
        matches!(self.role, Role::Staff | Role::Admin) && self.county().is_none()
    }

    /// What this account may see of the ledger (the console's lists, search, dashboard,
    /// exports, members' records): every group for city staff and admins, its chapter's groups
    /// for staff of a county chapter, its group for a leader, nothing for a member.
    pub fn viewer(&self) -> sanjin_ledger::Viewer {
        use sanjin_ledger::Viewer;
        match (self.role, &self.group) {
            (Role::Staff, _) if self.chapter.is_some() => Viewer::Chapter {
                chapter: self.chapter.clone().unwrap_or_default(),
                groups: self.scope.chapter_groups.clone(),
            },
            (Role::Staff | Role::Admin, _) => Viewer::Office,
            (Role::Leader, Some(g)) => Viewer::Leader { group: g.clone() },
            _ => Viewer::Member,
        }
    }

    /// The records this account may see, for list queries: `None` for city staff and admins
    /// (everything); else its groups, and for the legal advisory group every legal appeal.
    pub fn read_scope(&self) -> Option<ReadScope> {
        if self.reads_everything() {
            return None;
        }
        Some(match self.role {
            Role::Staff | Role::Admin => ReadScope {
                groups: self.scope.chapter_groups.clone(),
                legal_appeals: false,
            },
            Role::Member | Role::Leader => ReadScope {
                groups: self.group.iter().cloned().collect(),
                legal_appeals: self.group.is_some() && self.group == self.scope.legal_group,
            },
        })
    }
}

/// An enrolled device, as `sanjin admin devices` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    pub device_id: String,
    pub member: String,
    pub name: String,
    /// Hex of the device's automerge actor id.
    pub actor: String,
    pub enrolled_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
    pub last_sync_at_ms: Option<i64>,
}

/// An authenticated device making a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub device_id: String,
    pub account: Account,
}

/// A freshly issued one-time enrollment code. Only its hash is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssuedCode {
    /// Human-typable: `K7QM-2XPD-9B` (Crockford base32; case, dashes and spaces do not matter).
    pub code: String,
    pub member: String,
    pub expires_at_ms: i64,
}

/// `POST /v1/enroll`'s body. `device_id`, `actor` and `member` come from the device's store when
/// it has one; without them the server chooses the device id and the actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub code: String,
    #[serde(default)]
    pub device_name: String,
    #[serde(default)]
    pub device_id: Option<String>,
    /// Hex of the device store's actor id (16 bytes).
    #[serde(default)]
    pub actor: Option<String>,
    /// The member the device store belongs to; must be the code's member.
    #[serde(default)]
    pub member: Option<String>,
    /// Hex of the device's Ed25519 public key (issue 10); the server answers with a
    /// certificate for it.
    #[serde(default)]
    pub public_key: Option<String>,
}

/// `POST /v1/enroll`'s answer: the device's credentials. The secret is shown only here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    pub device_id: String,
    /// 32 random bytes, hex. Sent as `Authorization: Bearer <device_id>.<secret>`.
    pub secret: String,
    pub member: String,
    pub role: Role,
    pub group: Option<String>,
    /// Hex of the actor id the device must sign its changes with.
    pub actor: String,
    /// Hex of the server's epoch.
    pub server_epoch: String,
    /// Hex of the device's certificate, signed by the server (when a public key was sent).
    #[serde(default)]
    pub cert: Option<String>,
    /// Hex of the server's own certificate: the key that signs device certificates and the
    /// server's own changes. The device pins it.
    #[serde(default)]
    pub server_cert: String,
}

/// `POST /v1/device/key`: a device enrolled before signatures registers its public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRequest {
    pub public_key: String,
}

/// The answer: the device's certificate and the server's, hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRegistration {
    pub cert: String,
    pub server_cert: String,
}

/// `POST /v1/trust`'s body (issue 12): the records the device asks receipts for (those that
/// reached the server through another device's bundle or a meeting).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustRequest {
    #[serde(default)]
    pub receipts_for: Vec<String>,
}

/// A group's box secret at one epoch, hex (only to the group's devices and office devices).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSecretHex {
    pub group: String,
    pub epoch: u32,
    pub secret: String,
}

impl std::fmt::Debug for GroupSecretHex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupSecretHex")
            .field("group", &self.group)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// `POST /v1/trust`'s answer (issue 12): statements signed by the server's key (hex of their
/// encodings) and the caller's group secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustAnswer {
    /// `sanjin_core::sign::KeyDirectory`: the public keys bundles are sealed to.
    pub key_directory: String,
    /// `sanjin_core::sign::Revocations`: the whole revocation list.
    pub revocations: String,
    /// Every epoch's secret of the caller's group (of every group for staff and admin).
    pub group_secrets: Vec<GroupSecretHex>,
    /// `sanjin_core::sign::Receipt`s for the asked records the caller may read and the server
    /// holds, at the server's current heads.
    pub receipts: Vec<String>,
    /// Issue 13: the caller's own certificate (hex) as the server holds it now: re-issued for
    /// its new group when its member moved, so the device keeps the current one.
    #[serde(default)]
    pub cert: Option<String>,
}

/// What importing a directory did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Directory records new on the server.
    pub added: usize,
    /// Records the server had, changed by the import.
    pub updated: usize,
    /// Records the server had already, unchanged.
    pub unchanged: usize,
    pub accounts_created: usize,
    pub accounts_updated: usize,
    /// Of the accounts made or updated, how many are group leaders.
    pub leaders: usize,
}

/// Bounds the server keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The largest request body accepted (413 `too_large` beyond).
    pub body_bytes: usize,
    /// The answer's change bytes when the request asks for 0 (no preference).
    pub default_response_bytes: u32,
    /// The most change bytes in one answer, whatever the request asks.
    pub max_response_bytes: u32,
    /// The largest pushed document changes accepted (refused `too_large` beyond).
    pub max_doc_bytes: usize,
    /// How long an enrollment code stays valid.
    pub code_ttl_ms: i64,
    /// How long the answer to a request is kept for retries.
    pub idempotency_ttl_ms: i64,
    /// How many answers per device are kept for retries.
    pub idempotency_per_device: u32,
    /// The largest photo original accepted (413 `too_large` beyond).
    pub max_blob_bytes: u64,
    /// How long a partial upload nobody continues is kept before it is removed.
    pub blob_partial_ttl_ms: i64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            body_bytes: 16 << 20,
            default_response_bytes: 4 << 20,
            max_response_bytes: 32 << 20,
            max_doc_bytes: 8 << 20,
            code_ttl_ms: 7 * 24 * 3600 * 1000,
            idempotency_ttl_ms: 24 * 3600 * 1000,
            idempotency_per_device: 8,
            max_blob_bytes: 64 << 20,
            blob_partial_ttl_ms: 24 * 3600 * 1000,
        }
    }
}
