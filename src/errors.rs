//! What went wrong, said to members in Simplified Chinese with what to do next.

use std::path::Path;

use sanjin_core::domain::RecordKind;

/// An error of the input given on the command line or in a file: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// A validation error together with the kind of record it concerns, so the field's Chinese name
/// can be shown.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Invalid {
    pub kind: RecordKind,
    pub error: sanjin_core::ValidationError,
}

/// The message and the exit code for an error: 2 for bad input, 1 for everything else.
pub fn explain(e: &anyhow::Error) -> (String, u8) {
    if let Some(u) = e.downcast_ref::<Usage>() {
        return (u.0.clone(), 2);
    }
    if let Some(i) = e.downcast_ref::<Invalid>() {
        return (i.error.zh(i.kind), 2);
    }
    if let Some(s) = e.downcast_ref::<sanjin_store::Error>() {
        return store(s);
    }
    if let Some(c) = e.downcast_ref::<sanjin_core::Error>() {
        return core(c, RecordKind::Visit);
    }
    if let Some(b) = e.downcast_ref::<sanjin_client::bundle::BundleFailure>() {
        return (b.zh(), if b.is_bad_input() { 2 } else { 1 });
    }
    (format!("{e:#}"), 1)
}

/// A core error about a record of `kind`: a validation error keeps the kind, so the message can
/// name the field in Chinese.
pub fn invalid(kind: RecordKind, e: sanjin_core::Error) -> anyhow::Error {
    match e {
        sanjin_core::Error::Invalid(error) => Invalid { kind, error }.into(),
        other => other.into(),
    }
}

/// A store error about a record of `kind` (see [`invalid`]).
pub fn store_invalid(kind: RecordKind, e: sanjin_store::Error) -> anyhow::Error {
    match e {
        sanjin_store::Error::Core(c) => invalid(kind, c),
        other => other.into(),
    }
}

/// What the client was doing when an error happened: the same HTTP status means different
/// things to a member during enrollment and during sync.
#[derive(Clone, Copy, PartialEq)]
pub enum Phase {
    Enroll,
    Sync,
}

/// The client's errors in members' words, with what to do: `Usage` (exit 2) for input the member
/// can correct, a plain message (exit 1) otherwise.
pub fn client(e: sanjin_client::Error, phase: Phase, ca: Option<&Path>) -> anyhow::Error {
    use sanjin_client::Error as E;
    const RETRY: &str = "已保存的记录不会丢失";
    let usage = |m: String| anyhow::Error::from(Usage(m));
    match e {
        E::NotEnrolled => usage(
            "本设备尚未注册到同步服务器。请先运行：sanjin device enroll --server 服务器地址 --code 注册码"
                .into(),
        ),
        E::BadUrl(why) => usage(format!(
            "服务器地址无效（{why}）。应为 https://主机名:端口 这样的形式"
        )),
        E::InsecureUrl => usage(
            "服务器地址必须以 https:// 开头；http:// 只能用于本机上的服务器（127.0.0.1、localhost）"
                .into(),
        ),
        E::BadCertificate => usage(match ca {
            Some(p) => format!(
                "{} 不是 PEM 格式的证书，请使用管理员提供的服务器证书文件（以 -----BEGIN CERTIFICATE----- 开头）",
                p.display()
            ),
            None => "本设备保存的服务器证书已损坏，请用 --ca 重新注册".into(),
        }),
        E::BadRecordId => usage("记录编号无效".into()),
        E::WrongMember => usage(
            "这个注册码是为另一位委员签发的，与本设备数据文件的委员不符。请向管理员索取本人的注册码，或换用该委员的数据文件（--store）"
                .into(),
        ),
        E::Network(_) | E::Timeout(_) => match phase {
            Phase::Enroll => anyhow::anyhow!(
                "无法连接服务器，请检查服务器地址，并在有信号时重试"
            ),
            Phase::Sync => anyhow::anyhow!("无法连接服务器，请在有信号时重试；{RETRY}"),
        },
        E::ServerKeyMismatch => anyhow::anyhow!(
            "服务器的密钥与本设备注册时记下的不同，连接已中止，未发送任何数据：这个地址上可能是另一台服务器。请向管理员核对服务器地址；如管理员确认服务器换了密钥（数据目录的 tls 文件夹被删除或更换），请用管理员提供的新证书（--ca）重新注册本设备"
        ),
        E::Tls(_) => anyhow::anyhow!(
            "无法验证服务器的证书，连接已中止。请确认服务器地址正确；如服务器使用自签名证书，请用 --ca 指定管理员提供的证书后重新注册"
        ),
        E::Http { status, code } => match (phase, status, code.as_str()) {
            (Phase::Enroll, 401 | 404 | 409, _) | (_, _, "code_used") => usage(
                "注册码无效或已使用，请向管理员索取新的注册码".into(),
            ),
            (Phase::Enroll, 403, _) => usage(
                "这个注册码是为另一位委员签发的，与本设备数据文件的委员不符。请向管理员索取本人的注册码".into(),
            ),
            (Phase::Enroll, _, "device_exists" | "actor_in_use") => usage(
                "本设备已在服务器登记过，请向管理员说明，或用 sanjin device init 新建数据文件后再注册".into(),
            ),
            // Issue 13: the member retired; the unsynced records go to the office as a bundle.
            (_, _, "member_retired") => anyhow::anyhow!(
                "本机的委员已退出委员名录，本机已停用，不能再同步或登记。手机上尚未同步的记录没有丢失：请运行 sanjin device bundle export 导出离线包，交给政协机关，由机关用 sanjin admin import-bundle 导入；已经同步的记录仍记在您的名下"
            ),
            (Phase::Sync, 401, _) => anyhow::anyhow!(
                "设备已被停用或凭据无效，请联系管理员；{RETRY}"
            ),
            (_, 403, _) => anyhow::anyhow!("服务器拒绝了本设备的请求（无权限），请联系管理员"),
            (_, 413, _) => anyhow::anyhow!(
                "一次上传的数据超过了服务器的限制，请联系管理员；{RETRY}"
            ),
            (_, _, "unsupported_version") => anyhow::anyhow!(
                "服务器与本程序的同步协议版本不一致，请升级 sanjin；{RETRY}"
            ),
            (_, 503, _) => anyhow::anyhow!("服务器正在维护或重启，请稍后重试；{RETRY}"),
            (_, s, c) => anyhow::anyhow!(
                "服务器返回错误（HTTP {s}{}{c}），请稍后重试或联系管理员；{RETRY}",
                if c.is_empty() { "" } else { "，" }
            ),
        },
        E::Decode(_) | E::Protocol(_) => anyhow::anyhow!(
            "服务器的应答无法识别（{e}）。请确认服务器地址正确，必要时升级 sanjin；{RETRY}"
        ),
        E::Cancelled => anyhow::anyhow!("同步已取消；已完成的部分已保存"),
        E::Store(sanjin_store::Error::Damaged { id, reason }) if phase == Phase::Sync => {
            anyhow::anyhow!(
                "记录 {id} 无法与服务器同步（{reason}），同步已在此处停止；已保存的记录不会丢失。请升级 sanjin 后重试，或联系管理员"
            )
        }
        E::Store(s) => s.into(),
        E::Media(m) if m.is_bad_input() => usage(m.zh()),
        E::Media(m) => anyhow::anyhow!("{}", m.zh()),
        E::Io(why) => anyhow::anyhow!("无法读写文件（{why}）"),
    }
}

/// An error attaching the photo file `photo` to a record of `kind`: the file named when it is
/// the problem, the field when the record refuses it.
pub fn attach_error(e: sanjin_client::Error, photo: &Path, kind: RecordKind) -> anyhow::Error {
    match e {
        sanjin_client::Error::Media(m) if m.is_bad_input() => {
            anyhow::Error::from(Usage(format!("{}：{}", photo.display(), m.zh())))
        }
        sanjin_client::Error::Media(m) => anyhow::anyhow!("{}", m.zh()),
        sanjin_client::Error::Io(why) => anyhow::Error::from(Usage(format!(
            "无法读取照片文件 {}（{why}）",
            photo.display()
        ))),
        sanjin_client::Error::Store(e) => store_invalid(kind, e),
        other => client(other, Phase::Sync, None),
    }
}

/// A server-side error (`sanjin serve`, `sanjin admin`) said in Chinese, with what to do; input
/// errors exit 2.
pub fn server(e: sanjin_server::Error) -> anyhow::Error {
    use sanjin_server::Error;
    let usage = |m: String| anyhow::Error::new(Usage(m));
    match e {
        Error::Exists(id) => usage(format!("编号 {id} 已存在，请换一个编号")),
        Error::UnknownAccount(m) => usage(format!(
            "没有账户 {m}。请先用 sanjin admin import-directory、add-member 或 add-staff 添加"
        )),
        Error::UnknownDevice(d) => usage(format!(
            "没有编号为 {d} 的设备，可用 sanjin admin devices 查看"
        )),
        Error::UnknownRecord(what) => usage(format!("找不到 {what}，请先添加它")),
        Error::Invalid(m) => usage(format!("输入有误：{m}")),
        Error::Forbidden(m) => usage(m),
        Error::Core(sanjin_core::Error::Invalid(v)) => {
            usage(format!("输入有误：{}：{}", v.field, v.reason.zh()))
        }
        Error::Core(sanjin_core::Error::BadId(id)) => usage(format!(
            "编号“{id}”无效：只能用字母、数字、- 或 _，最长 64 位"
        )),
        Error::Fixtures(f) => usage(format!("名录文件有误：{f}")),
        Error::NotServerData(p) => usage(format!(
            "{} 不是 sanjin 服务器的数据库（可能是设备数据文件），请检查 --data",
            p.display()
        )),
        Error::NewerSchema { found, supported } => anyhow::anyhow!(
            "服务器数据由更新版本的 sanjin 写入（服务器表版本 {found}，本程序支持到 {supported}），请升级 sanjin；数据未被改动"
        ),
        Error::PlainNotLoopback(addr) => usage(format!(
            "--plain（明文 HTTP）只允许监听本机回环地址（127.0.0.1 或 ::1），{addr} 不是。对外提供服务请用 --tls-cert 与 --tls-key，或 --tls-self-signed"
        )),
        Error::Bind { addr, source } => anyhow::anyhow!(
            "无法监听 {addr}：{source}。端口是否已被占用，或需要更高权限？可换一个端口（--listen）"
        ),
        Error::Tls(m) => usage(format!("TLS 证书无法使用：{m}")),
        Error::Io { path, source } => {
            anyhow::anyhow!("无法读写 {}：{source}", path.display())
        }
        Error::Store(s) => anyhow::Error::new(s),
        Error::Core(c) => anyhow::Error::new(c),
    }
}

fn store(e: &sanjin_store::Error) -> (String, u8) {
    use sanjin_store::Error as E;
    match e {
        E::Missing(p) => (
            format!(
                "找不到设备数据文件 {}。请先运行：sanjin device init --store {} --member 您的委员编号",
                p.display(),
                p.display()
            ),
            2,
        ),
        E::NotAStore(p) => (
            format!(
                "{} 不是 sanjin 设备数据文件，请检查 --store 指向的路径",
                p.display()
            ),
            2,
        ),
        E::NewerSchema {
            path,
            found,
            supported,
        } => (
            format!(
                "{} 由更新版本的 sanjin 创建（数据版本 {found}，本程序支持到 {supported}），请升级 sanjin 后再打开；文件未被改动",
                path.display()
            ),
            1,
        ),
        E::AlreadyInitialized(p) => (
            format!(
                "{} 已经初始化过，如需为另一位委员记录请换一个文件（--store）",
                p.display()
            ),
            2,
        ),
        E::NotFound(id) => (
            format!("没有编号为 {id} 的记录，可用 sanjin device list 查看"),
            2,
        ),
        E::Damaged { id, reason } => (
            format!(
                "记录 {id} 的数据已损坏（{reason}）。其他记录不受影响；可从组内其他设备用 sanjin device merge-from 取回"
            ),
            1,
        ),
        E::Core(c) => core(c, RecordKind::Visit),
        // Only a server's data folder gives these (`sanjin serve`, `sanjin admin`).
        E::NotServerData(p) => (
            format!(
                "{} 不是 sanjin 服务器的数据文件，请检查数据目录",
                p.display()
            ),
            2,
        ),
        E::NewerServerSchema { found, supported } => (
            format!(
                "服务器数据由更新版本的 sanjin 创建（服务器数据版本 {found}，本程序支持到 {supported}），请升级 sanjin 后再打开；文件未被改动"
            ),
            1,
        ),
        E::Database(s) => (
            format!("数据库出错：{s}。请确认存储空间充足、文件未被其他程序占用"),
            1,
        ),
        E::NoServerKey => (
            "本设备还没有服务器的密钥：请先注册（sanjin device enroll）并在有信号时同步一次".into(),
            2,
        ),
    }
}

fn core(e: &sanjin_core::Error, kind: RecordKind) -> (String, u8) {
    use sanjin_core::Error as E;
    match e {
        E::Invalid(v) => (v.zh(kind), 2),
        E::BadId(id) => (
            format!("编号“{id}”无效：只能用字母、数字、- 或 _，最长 64 位"),
            2,
        ),
        E::Corrupt { id, reason } => (format!("记录 {id} 的数据无法读取（{reason}）"), 1),
        E::UnknownSchema {
            id,
            found,
            supported,
        } => (
            format!(
                "记录 {id} 由更新版本的 sanjin 写入（格式 {found}，本程序支持到 {supported}），请升级 sanjin"
            ),
            1,
        ),
        other => (other.to_string(), 1),
    }
}
