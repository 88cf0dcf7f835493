//! `sanjin device …`: the member's side, on the device store. One module per command or family
//! of commands; this one holds the command line (`Command`) and sends each command to its module:
//!
//! - `enroll`: `init` (a new store) and `enroll` (register with a server);
//! - `record`: `record visit|opinion|household|plan` (from flags or a JSON file);
//! - `edit`: `edit`, `resolve`, `step`, `delete`, `restore` (one change to one record);
//! - `list`: `list` and `show` (reading);
//! - `merge`: `merge-from`, `import`, `check` (whole stores);
//! - `sync`: `sync` (the records, then the photo originals: `sanjin_client::sync_then_photos`);
//! - `photos`: `attach`;
//! - `bundle`: `bundle export|import` (records in files, without signal; issue 12);
//! - `meet`: `meet --serve|--join` (phone to phone without a server; issue 12);
//! - `render`: what these commands print that is more than one line (shared by several).
//!
//! Errors are said to members by `crate::errors` (exit code 2 for input they can correct).

mod bundle;
mod edit;
mod enroll;
mod list;
mod meet;
mod merge;
mod photos;
mod record;
mod render;
mod sync;

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Subcommand;
use sanjin_store::{Durability, Store};

use list::ListArgs;
use record::RecordCmd;

#[derive(Subcommand)]
pub enum Command {
    /// 为一位委员创建设备数据文件
    Init {
        /// 委员编号，如 member-0001
        #[arg(long)]
        member: String,
    },
    /// 新建记录：活动记录、社情民意、困难户、年度计划
    Record {
        #[command(subcommand)]
        what: RecordCmd,
    },
    /// 列出记录（可筛选）
    List(ListArgs),
    /// 查看一条记录：当前内容、待裁定的冲突、历史（留痕）
    Show {
        id: String,
        /// 以 JSON 输出（供脚本使用）
        #[arg(long)]
        json: bool,
    },
    /// 修改一个字段。集合字段用 --add/--remove，帮扶记录用 --append
    Edit {
        id: String,
        field: String,
        value: String,
        #[arg(long, conflicts_with_all = ["remove", "append"])]
        add: bool,
        #[arg(long, conflicts_with = "append")]
        remove: bool,
        #[arg(long)]
        append: bool,
    },
    /// 裁定冲突：为字段（或 status）选定一个值
    Resolve {
        id: String,
        field: String,
        value: String,
    },
    /// 流转：submit 提交、return 退回、approve 审核通过、accept 采纳、forward 转办、handle 办理、feedback 反馈
    Step {
        id: String,
        step: String,
        /// 说明（如退回原因）
        #[arg(long)]
        note: Option<String>,
    },
    /// 删除记录（保留痕迹，可恢复）
    Delete {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// 恢复已删除的记录
    Restore { id: String },
    /// 直接合并另一台设备的数据文件（无需服务器）
    MergeFrom {
        other: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// 导入记录：fixtures 目录或 JSON Lines 文件（每行一条）
    Import {
        path: PathBuf,
        /// 每保存一条输出一行 JSON
        #[arg(long)]
        json: bool,
    },
    /// 检查每条记录能否读取
    Check {
        #[arg(long)]
        json: bool,
    },
    /// 向同步服务器注册本设备（使用管理员发放的一次性注册码）
    Enroll {
        /// 服务器地址，如 https://sanjin.example.org:8443（http:// 仅限本机地址）
        #[arg(long)]
        server: String,
        /// 一次性注册码
        #[arg(long)]
        code: String,
        /// 服务器的自签名证书（PEM 文件，由管理员提供）；指定后只信任这一证书
        #[arg(long, value_name = "CERT.pem")]
        ca: Option<PathBuf>,
        /// 设备名称，如“张委员的手机”；不填则用本机名
        #[arg(long)]
        name: Option<String>,
    },
    /// 与服务器同步：上传尚未确认的记录，接收本组新的记录和修改，再按策略上传照片原图
    Sync {
        /// 以一个 JSON 对象输出同步结果（供脚本使用）
        #[arg(long)]
        json: bool,
        /// 每次上传的最大字节数（信号差时可调小，默认 262144）
        #[arg(long, value_name = "BYTES")]
        batch_bytes: Option<usize>,
        /// 照片原图何时上传：now 立即、wifi-only 仅在 Wi-Fi 下、never 暂不上传（缩略图总是随记录同步）
        #[arg(long, value_name = "now|wifi-only|never", default_value = "now")]
        photos: String,
        /// 当前网络：wifi 或 cellular（移动网络）
        #[arg(long, value_name = "wifi|cellular", default_value = "cellular")]
        link: String,
    },
    /// 会面同步：组长开启会面（--serve，显示二维码和六位会面码），组员扫码或输入会面码加入（--join），无需服务器和信号
    #[command(group(clap::ArgGroup::new("meet_mode").required(true).args(["serve", "join"])))]
    Meet {
        /// 开启会面（组长的手机），直到按 Ctrl-C 或到期
        #[arg(long)]
        serve: bool,
        /// 加入会面：二维码内容，或“六位会面码@地址:端口”
        #[arg(long, value_name = "CODE")]
        join: Option<String>,
        /// 会面有效分钟数
        #[arg(long, default_value_t = 10)]
        minutes: u64,
        /// 监听的地址和端口，如 0.0.0.0:7443（默认所有网卡、任一空闲端口）
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
        /// 记录之后也交换照片原图
        #[arg(long)]
        originals: bool,
        /// 以 JSON 输出（供脚本使用）
        #[arg(long)]
        json: bool,
    },
    /// 为记录添加照片：生成缩略图随记录同步，原图等待上传（JPEG、PNG、WebP）
    Attach {
        /// 记录编号
        id: String,
        /// 照片文件
        photo: PathBuf,
        /// 照片说明
        #[arg(long)]
        caption: Option<String>,
        /// 以 JSON 输出（供脚本使用）
        #[arg(long)]
        json: bool,
    },
    /// 记录包：无信号时用文件（U 盘、聊天软件）在设备之间传递记录，加密并签名
    Bundle {
        #[command(subcommand)]
        what: bundle::BundleCmd,
    },
}

/// Runs one device command on the store at `store`.
pub fn run(store: &Path, cmd: Command) -> Result<()> {
    match cmd {
        Command::Init { member } => enroll::init(store, &member),
        Command::Record { what } => record::run(store, what),
        Command::List(args) => list::list(store, args),
        Command::Show { id, json } => list::show(store, &id, json),
        Command::Edit {
            id,
            field,
            value,
            add,
            remove,
            append,
        } => edit::edit(
            store,
            &id,
            &field,
            &value,
            edit::Mode {
                add,
                remove,
                append,
            },
        ),
        Command::Resolve { id, field, value } => edit::resolve(store, &id, &field, &value),
        Command::Step { id, step, note } => edit::step(store, &id, &step, note.as_deref()),
        Command::Delete { id, note } => edit::delete(store, &id, note.as_deref()),
        Command::Restore { id } => edit::restore(store, &id),
        Command::MergeFrom { other, json } => merge::merge_from(store, &other, json),
        Command::Import { path, json } => merge::import(store, &path, json),
        Command::Check { json } => merge::check(store, json),
        Command::Enroll {
            server,
            code,
            ca,
            name,
        } => enroll::enroll(store, &server, &code, ca.as_deref(), name),
        Command::Sync {
            json,
            batch_bytes,
            photos,
            link,
        } => sync::sync(store, json, batch_bytes, &photos, &link),
        Command::Meet {
            serve,
            join,
            minutes,
            bind,
            originals,
            json,
        } => match (serve, join) {
            (_, Some(target)) => meet::join_session(store, &target, originals, json),
            _ => meet::serve(store, minutes, bind.as_deref(), originals, json),
        },
        Command::Attach {
            id,
            photo,
            caption,
            json,
        } => photos::attach(store, &id, &photo, caption.as_deref().unwrap_or(""), json),
        Command::Bundle { what } => bundle::run(store, what),
    }
}

/// The device store, durable (every save survives power loss before it returns).
fn open(path: &Path) -> Result<Store> {
    Ok(Store::open(path, Durability::Full)?)
}
