//! `sanjin-sim`: runs many seeds of the simulated network and reports seeds per second.
//!
//! `cargo run --release -p sanjin-sim -- --seeds 10000 [--json]`

use std::time::Instant;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Runs seeds of sanjin's simulated sync network and checks its invariants")]
struct Args {
    /// How many seeds.
    #[arg(long, default_value_t = 1000)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Devices per seed.
    #[arg(long, default_value_t = 3)]
    devices: usize,
    /// Steps per seed before the final clean rounds.
    #[arg(long, default_value_t = 24)]
    steps: usize,
    /// Run the engine broken on purpose (the cursor committed before its data).
    #[arg(long)]
    broken: bool,
    /// Without the server's backups and restores (the other faults stay).
    #[arg(long)]
    no_restore: bool,
    /// Only these seeds (comma-separated), instead of a range.
    #[arg(long, value_delimiter = ',')]
    only: Vec<u64>,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn main() {
    let args = Args::parse();
    let mut cfg = sanjin_sim::Config {
        devices: args.devices,
        steps: args.steps,
        broken: args.broken,
        ..sanjin_sim::Config::default()
    };
    if args.no_restore {
        cfg.faults.backup = 0;
        cfg.faults.restore = 0;
    }
    let seeds: Vec<u64> = if args.only.is_empty() {
        (args.start..args.start + args.seeds).collect()
    } else {
        args.only.clone()
    };
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut exchanges = 0usize;
    let mut acked = 0usize;
    let mut restores = 0usize;
    let mut resyncs = 0usize;
    let mut crashes = 0usize;
    for &seed in &seeds {
        match sanjin_sim::run(seed, &cfg) {
            Ok(r) => {
                exchanges += r.exchanges;
                acked += r.acked_changes;
                restores += r.restores;
                resyncs += r.resyncs;
                crashes += r.device_crashes + r.server_crashes;
            }
            Err(f) => {
                if !args.json {
                    eprintln!("FAILED {f}");
                }
                failures.push(f);
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let per_sec = seeds.len() as f64 / secs.max(1e-9);
    if args.json {
        let failed: Vec<serde_json::Value> = failures
            .iter()
            .map(|f| serde_json::json!({"seed": f.seed, "what": f.what}))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "seeds": seeds.len(),
                "no_restore": args.no_restore,
                "start": args.start,
                "devices": args.devices,
                "steps": args.steps,
                "broken": args.broken,
                "seconds": (secs * 1000.0).round() / 1000.0,
                "seeds_per_second": (per_sec * 100.0).round() / 100.0,
                "exchanges": exchanges,
                "acked_changes": acked,
                "crashes": crashes,
                "restores": restores,
                "resyncs": resyncs,
                "failed": failed,
            })
        );
    } else {
        println!(
            "{} seeds in {secs:.1} s: {per_sec:.1} seeds/s, {exchanges} exchanges, {crashes} crashes, {restores} restores from backup, {resyncs} fallbacks, {acked} acknowledged changes checked, {} failed",
            seeds.len(),
            failures.len()
        );
    }
    if !failures.is_empty() {
        std::process::exit(1);
    }
}
