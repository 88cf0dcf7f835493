//! `sanjin`: the command line of sanjin (三进): members' devices (`device`), the sync server
//! (`serve`, `admin`), the ledger (`export`) and the whole story on embedded data (`demo`).
//!
//! Arguments, rendering for a terminal and error messages only: records are built by
//! `sanjin_core::input`, stored by `sanjin_store`, synced by `sanjin_client`, served by
//! `sanjin_server`, exported by `sanjin_ledger`. It never holds logic the phone bridge would
//! need too, and what members read stays Simplified Chinese (`errors.rs` says every error with
//! what to do; exit code 2 for bad input, 1 otherwise).

mod demo;
mod device;
mod errors;
mod export;
mod server_cli;
mod show;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// sanjin（三进）：政协委员进社区、进园区、进农村的离线记录工具
#[derive(Parser)]
#[command(name = "sanjin", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// 设备端：在手机（或本机）上离线记录、查看、合并
    Device(Box<DeviceCmd>),
    /// 演示：启动同步服务器，组长和三位委员的手机离线记录（含冲突和照片）、同步、裁定，再导出台账并给出工作台登录方式（使用内置演示数据）
    Demo {
        /// 保留演示数据的目录（须为空目录）；不填则用临时目录
        #[arg(long)]
        dir: Option<PathBuf>,
        /// 演示结束后服务器继续运行（工作台可用浏览器查看），按 Ctrl-C 停止
        #[arg(long)]
        serve: bool,
    },
    /// 同步服务器：运行服务（TLS），设备在此注册并同步
    Serve(Box<server_cli::ServeArgs>),
    /// 服务器管理：导入名录、添加委员和工作人员、发放设备注册码、查看和吊销设备
    Admin(Box<server_cli::AdminCmd>),
    /// 导出台账（Excel 或 CSV）：活动、社情民意、结对帮扶、委员履职、全覆盖、六个一、计划执行、主题统计
    Export(Box<export::ExportArgs>),
}

#[derive(Args)]
struct DeviceCmd {
    /// 设备数据文件（SQLite）
    #[arg(
        long,
        global = true,
        env = "SANJIN_STORE",
        default_value = "sanjin-device.sqlite"
    )]
    store: PathBuf,
    #[command(subcommand)]
    command: device::Command,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with success; usage errors say what was wrong.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        Command::Device(d) => {
            let DeviceCmd { store, command } = *d;
            device::run(&store, command)
        }
        Command::Demo { dir, serve } => demo::run(dir, serve),
        Command::Serve(args) => server_cli::serve(*args),
        Command::Admin(cmd) => server_cli::admin(*cmd),
        Command::Export(args) => export::run(*args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let (message, code) = errors::explain(&e);
            eprintln!("错误：{message}");
            ExitCode::from(code)
        }
    }
}
