//! What went wrong, said to members in Simplified Chinese with what to do next.

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
    (format!("{e:#}"), 1)
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
