//! `sanjin device init` (a new store for a member) and `sanjin device enroll` (the store's
//! device registered with a sync server).

use std::path::Path;

use anyhow::Result;
use sanjin_core::validate;
use sanjin_store::{Durability, Identity, Store, new_device};

use super::open;
use crate::errors::{Phase, Usage, client};

/// `sanjin device init --member ID`: a new store for one member, with a new device id and
/// actor id.
pub fn init(path: &Path, member: &str) -> Result<()> {
    if !validate::is_id(member) {
        return Err(Usage(format!(
            "委员编号“{member}”无效：只能用字母、数字、- 或 _，最长 64 位"
        ))
        .into());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        {
            return Err(Usage(format!(
                "目录 {} 不存在，请先创建或换一个 --store 路径",
                dir.display()
            ))
            .into());
        }
    }
    let (device, actor) = new_device();
    let identity = Identity {
        member: member.into(),
        device: device.clone(),
        actor,
    };
    Store::init(path, &identity, Durability::Full)?;
    println!(
        "已为委员 {member} 创建设备数据文件 {}（设备 {device}）",
        path.display()
    );
    Ok(())
}

/// `sanjin device enroll`: trades the one-time code for the device's credentials (the server's
/// certificate pinned with `--ca`).
pub fn enroll(
    store: &Path,
    server: &str,
    code: &str,
    ca: Option<&Path>,
    name: Option<String>,
) -> Result<()> {
    let mut s = open(store)?;
    let ca_pem = match ca {
        None => None,
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| Usage(format!("无法读取证书文件 {}：{e}", p.display())))?,
        ),
    };
    if code.trim().is_empty() {
        return Err(Usage("注册码不能为空".into()).into());
    }
    let name = name.unwrap_or_else(default_device_name);
    let e = sanjin_client::enroll(&mut s, server, code, ca_pem.as_deref(), &name)
        .map_err(|e| client(e, Phase::Enroll, ca))?;
    println!(
        "已注册：设备“{}”（{}）已登记到服务器 {}，委员 {}，角色：{}{}",
        e.device_name,
        e.device_id,
        e.server,
        e.member,
        role_zh(&e.role),
        e.group
            .as_deref()
            .map(|g| format!("，活动组 {g}"))
            .unwrap_or_default()
    );
    if let Some(p) = ca {
        println!("已固定服务器证书：今后同步只信任 {} 中的证书", p.display());
    }
    println!("现在可以运行 sanjin device sync 同步记录");
    Ok(())
}

fn role_zh(role: &str) -> &str {
    match role {
        "member" => "委员",
        "leader" => "活动组组长",
        "staff" => "机关工作人员",
        "admin" => "管理员",
        other => other,
    }
}

fn default_device_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h.chars().count() <= 64)
        .unwrap_or_else(|| "sanjin 命令行".to_string())
}
