//! `sanjin device meet`: phone to phone without a server (issue 12). `--serve` opens a session
//! on the local network (prints the QR code and the six-digit code, serves joiners until Ctrl-C
//! or the expiry, and says who joined, what merged and which records now hold conflicts);
//! `--join` joins one with the QR text or `123456@addr:port`. Progress to standard error, the
//! result to standard output (`--json`: one object per joiner, then the summary).

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use sanjin_client::meet::{
    ExchangeReport, JoinOptions, MeetError, MeetSession, MeetStep, PeerReport, ServeOptions, join,
};
use serde_json::json;

use super::open;
use crate::errors::Usage;

/// The member's words for a meeting error; what they can fix themselves exits 2.
fn meet_error(e: MeetError) -> anyhow::Error {
    let usage = matches!(
        e,
        MeetError::BadTarget
            | MeetError::Newer
            | MeetError::NotEnrolled
            | MeetError::WrongKey
            | MeetError::WrongCode { .. }
            | MeetError::CodeClosed
            | MeetError::Expired
            | MeetError::FingerprintMismatch
            | MeetError::OtherGroup { .. }
            | MeetError::Revoked { .. }
            | MeetError::NotByServer { .. }
            | MeetError::RefusedBy(_)
    );
    if usage {
        Usage(e.zh()).into()
    } else {
        anyhow::anyhow!(e.zh())
    }
}

pub fn serve(
    store: &Path,
    minutes: u64,
    bind: Option<&str>,
    originals: bool,
    json: bool,
) -> Result<()> {
    if minutes == 0 || minutes > 120 {
        return Err(Usage("--minutes 须在 1 到 120 之间".into()).into());
    }
    let mut opts = ServeOptions {
        ttl: Duration::from_secs(minutes * 60),
        originals,
        ..ServeOptions::default()
    };
    if let Some(b) = bind {
        opts.bind = b.parse::<SocketAddr>().map_err(|_| {
            Usage(format!(
                "--bind 应为“地址:端口”，如 0.0.0.0:7443，不是“{b}”"
            ))
        })?;
    }
    let s = open(store)?;
    let mut session = MeetSession::serve(s, opts).map_err(meet_error)?;
    let inv = session.invite().clone();
    if json {
        println!(
            "{}",
            json!({"event": "serving", "qr": inv.qr_text(), "code": inv.code_text(), "minutes": minutes})
        );
    } else {
        println!("{}", inv.qr_terminal());
        println!("会面已开启，{minutes} 分钟内有效。请组员用三进扫描上面的二维码加入，");
        println!("或在“加入会面”处输入：{}", inv.code_text());
        println!("（二维码内容：{}）", inv.qr_text());
        println!("按 Ctrl-C 结束会面。");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(sanjin_server::shutdown_signal());
            s2.store(true, Ordering::SeqCst);
        }
    });
    let mut shown = 0;
    let out = std::io::stdout();
    loop {
        let st = session.status();
        for p in &st.peers[shown..] {
            print_peer(&mut out.lock(), p, json)?;
        }
        shown = st.peers.len();
        if stop.load(Ordering::SeqCst) || (st.expired && st.active == 0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let st = session.stop();
    for p in &st.peers[shown..] {
        print_peer(&mut out.lock(), p, json)?;
    }
    let joined = st.peers.iter().filter(|p| p.exchange.is_some()).count();
    let landed: usize = st
        .peers
        .iter()
        .filter_map(|p| p.exchange.as_ref())
        .map(|e| e.landed)
        .sum();
    if json {
        println!(
            "{}",
            json!({"event": "closed", "joined": joined, "landed": landed, "expired": st.expired})
        );
    } else {
        println!("会面结束：{joined} 部手机完成同步，本机收到 {landed} 条新的或更新的记录。");
    }
    Ok(())
}

fn print_peer(out: &mut impl Write, p: &PeerReport, json: bool) -> Result<()> {
    if json {
        writeln!(out, "{}", json!({"event": "peer", "peer": p}))?;
        return Ok(());
    }
    match (&p.exchange, &p.error) {
        (Some(e), _) => {
            writeln!(out, "· {}（设备 {}）已同步：", e.peer.member, e.peer.device)?;
            exchange_text(out, e, "对方")?;
        }
        (None, Some(err)) => writeln!(out, "· 来自 {} 的加入未成功：{err}", p.address)?,
        (None, None) => {}
    }
    Ok(())
}

fn exchange_text(out: &mut impl Write, e: &ExchangeReport, other: &str) -> Result<()> {
    writeln!(
        out,
        "  收到 {} 条新的或更新的记录，发给{other} {} 条；{other}收下 {} 条{}。",
        e.landed,
        e.sent,
        e.peer_landed,
        if e.peer_refused > 0 {
            format!("，拒收 {} 条", e.peer_refused)
        } else {
            String::new()
        }
    )?;
    for r in &e.refused {
        if r.doc_id.is_empty() {
            writeln!(out, "  拒收：{}", r.reason)?;
        } else {
            writeln!(out, "  拒收 {}：{}", r.doc_id, r.reason)?;
        }
    }
    for c in &e.conflicts {
        writeln!(
            out,
            "  冲突 {}：{} 被不同成员同时修改，请组长裁定（sanjin device resolve）。",
            c.doc_id,
            c.fields.join("、")
        )?;
    }
    if e.originals_sent + e.originals_received > 0 {
        writeln!(
            out,
            "  照片原图：发出 {} 张，收到 {} 张。",
            e.originals_sent, e.originals_received
        )?;
    }
    Ok(())
}

pub fn join_session(store: &Path, target: &str, originals: bool, json: bool) -> Result<()> {
    let mut s = open(store)?;
    let mut progress = |step: &MeetStep| {
        let line = match step {
            MeetStep::Connecting => "正在连接组长的手机…".to_string(),
            MeetStep::Authenticating => "正在核对会面码…".into(),
            MeetStep::Verifying => "正在核对双方的设备证书…".into(),
            MeetStep::Summaries => "正在比对双方的记录…".into(),
            MeetStep::Sending { done, total } => format!("正在发送 {}/{total}…", done + 1),
            MeetStep::Receiving { parts } => format!("已收到 {parts} 份…"),
            MeetStep::Importing => "正在核对并保存收到的记录…".into(),
            MeetStep::Originals => "正在交换照片原图…".into(),
            MeetStep::Done => "完成。".into(),
        };
        if !json {
            eprintln!("{line}");
        }
    };
    let r = join(
        &mut s,
        target,
        JoinOptions {
            originals,
            progress: Some(&mut progress),
            ..JoinOptions::default()
        },
    )
    .map_err(meet_error)?;
    let out = std::io::stdout();
    let mut out = out.lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&r)?)?;
    } else {
        writeln!(
            out,
            "已与 {}（设备 {}）同步：",
            r.peer.member, r.peer.device
        )?;
        exchange_text(&mut out, &r, "组长")?;
    }
    Ok(())
}
