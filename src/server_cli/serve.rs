//! `sanjin serve`: the sync server on a data folder, until Ctrl-C.

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use sanjin_server::{Config, Limits, TlsMode};

use super::DataArg;
use crate::errors::{self, Usage};

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    data: DataArg,
    /// 监听地址，如 127.0.0.1:8443 或 0.0.0.0:8443；端口写 0 表示任选空闲端口
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: String,
    /// TLS 证书链文件（PEM），与 --tls-key 一起使用
    #[arg(long, value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// TLS 私钥文件（PEM），与 --tls-cert 一起使用
    #[arg(long, value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// 使用自签名证书（首次启动时生成并保存在 数据目录/tls/，之后沿用）；供试用，客户端需信任该证书
    #[arg(long)]
    tls_self_signed: bool,
    /// 自签名证书额外包含的主机名或 IP（可多次指定），如 --hostname sanjin.example.cn
    #[arg(long = "hostname", value_name = "NAME")]
    hostnames: Vec<String>,
    /// 明文 HTTP（不加密），只允许监听本机回环地址，仅供开发和测试
    #[arg(long)]
    plain: bool,
    /// 单个请求体的上限（MiB），超出返回 413
    #[arg(long, default_value_t = 16, value_name = "MIB")]
    max_body_mib: usize,
    /// 照片原图未完成的上传保留多久（小时），过期清除；启动时和运行中定期清理
    #[arg(long, default_value_t = 24, value_name = "HOURS")]
    partial_upload_hours: u64,
    /// 停止服务时等待进行中请求完成的最长秒数
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    shutdown_grace: u64,
}

fn listen_addr(s: &str) -> Result<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            Usage(format!(
                "监听地址“{s}”无效，应为 IP:端口，如 127.0.0.1:8443 或 0.0.0.0:8443"
            ))
            .into()
        })
}

/// `sanjin serve`.
pub fn serve(args: ServeArgs) -> Result<()> {
    let listen = listen_addr(&args.listen)?;
    let tls = match (
        args.tls_cert,
        args.tls_key,
        args.tls_self_signed,
        args.plain,
    ) {
        (Some(cert), Some(key), false, false) => TlsMode::Files { cert, key },
        (None, None, true, false) => TlsMode::SelfSigned {
            hostnames: args.hostnames.clone(),
        },
        (None, None, false, true) => TlsMode::Plain,
        (Some(_), None, _, _) | (None, Some(_), _, _) => {
            return Err(Usage("--tls-cert 与 --tls-key 须同时指定".into()).into());
        }
        _ => {
            return Err(Usage(
                "请选择一种连接方式（只选一种）：--tls-cert 与 --tls-key（正式证书）、--tls-self-signed（自签名证书，试用）或 --plain（明文，仅限本机）"
                    .into(),
            )
            .into());
        }
    };
    if !args.hostnames.is_empty() && !matches!(tls, TlsMode::SelfSigned { .. }) {
        return Err(Usage("--hostname 只用于 --tls-self-signed".into()).into());
    }
    if args.max_body_mib == 0 || args.max_body_mib > 1024 {
        return Err(Usage("--max-body-mib 应在 1 到 1024 之间".into()).into());
    }
    if args.partial_upload_hours == 0 || args.partial_upload_hours > 24 * 365 {
        return Err(Usage("--partial-upload-hours 应在 1 到 8760 之间".into()).into());
    }
    let mut config = Config::new(&args.data.data, listen, tls.clone());
    config.limits = Limits {
        body_bytes: args.max_body_mib << 20,
        blob_partial_ttl_ms: args.partial_upload_hours as i64 * 3600 * 1000,
        ..Limits::default()
    };
    config.shutdown_grace = std::time::Duration::from_secs(args.shutdown_grace);
    sanjin_server::init_logging();
    let data_dir = std::path::absolute(&args.data.data).unwrap_or(args.data.data.clone());
    sanjin_server::run_blocking(config, |running| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "数据目录：{}", data_dir.display());
        if let Some(cert) = running.certificate() {
            let cert = std::path::absolute(cert).unwrap_or(cert.to_path_buf());
            let _ = writeln!(
                out,
                "TLS 证书（自签名，设备注册时需信任此证书）：{}",
                cert.display()
            );
        }
        if let Some(sanjin_server::SelfSignedCert::Reissued { names, .. }) = running.self_signed() {
            let _ = writeln!(
                out,
                "自签名证书已按新的主机名重新签发（{}），密钥不变：已注册的设备照常同步，无需重新注册",
                names.join("、")
            );
        }
        if tls == TlsMode::Plain {
            let _ = writeln!(out, "注意：明文 HTTP，仅供本机开发和测试");
        }
        let _ = writeln!(out, "listening on {}", running.url());
        let _ = out.flush();
    })
    .map_err(errors::server)?;
    println!("已停止服务");
    Ok(())
}
