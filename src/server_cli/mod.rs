//! `sanjin serve …` and `sanjin admin …`: the sync server and its administration, on the
//! server's data folder (`--data`, default `./sanjin-data`). `serve` runs the server; `admin`
//! holds one function per subcommand. Errors are said by `crate::errors::server`.

mod admin;
mod serve;

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use sanjin_server::ServerData;

pub use admin::{AdminCmd, admin};
pub use serve::{ServeArgs, serve};

/// Where the server keeps its data.
#[derive(Args)]
pub struct DataArg {
    /// 服务器数据目录（SQLite 数据库、照片文件夹、自签名证书），首次使用时创建
    #[arg(
        long,
        global = true,
        env = "SANJIN_DATA",
        default_value = "sanjin-data"
    )]
    data: PathBuf,
}

fn open(data: &Path) -> Result<ServerData> {
    ServerData::open(data).map_err(crate::errors::server)
}
