"""What the phone bridge adds per call: the same calls from Python through the generated
bindings (bridge_ms) and directly in Rust (rust_ms, `sanjin-bench bridge`), on copies of one
store holding the committed city fixtures. Prints one JSON line per scenario per run, then one
line per scenario with the medians of the runs (`"run": "median"`).

Run through mobile-bridge/bench.sh, which builds the release library and the bindings.
Usage: python3 mobile-bridge/bench.py --bench-bin PATH [--runs 5] [--samples 200]
"""

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import sanjin_mobile_bridge as sb

VISIT = dict(
    target_kind="village",
    contact_point="cp-001",
    group="group-01",
    activity_type="调研座谈",
    start="2026-05-19T09:00",
    end="2026-05-19T11:30",
    title="新华村人居环境座谈",
    summary="听取村民对垃圾清运的意见。",
    gps="30.92,113.91",
    participants=["member-0001"],
)


def median_ms(f, samples):
    out = []
    for _ in range(samples):
        t = time.perf_counter()
        f()
        out.append((time.perf_counter() - t) * 1000.0)
    return round(statistics.median(out), 3)


# The same month and group as `sanjin-bench bridge` (crates/bench/src/bridge.rs).
MONTH, GROUP = "2025-05", "group-11"
SCENARIOS = ("save_visit", "list_month", "list_month_all", "list_month_empty")
LISTS = (("list_month", MONTH, GROUP), ("list_month_all", MONTH, None), ("list_month_empty", "2030-01", GROUP))


def python_side(path, samples):
    store = sb.DeviceStore.open(str(path))
    # The draft is built inside the timed call: the app builds one per save.
    save = lambda: store.record_visit(sb.VisitDraft(**VISIT), False)  # noqa: E731
    save()
    result, rows = {"save_visit": median_ms(save, samples)}, {}
    for scenario, m, group in LISTS:
        month = sb.ListFilter(kind=sb.Kind.VISIT, month=m, group=group)
        rows[scenario] = len(store.list(month))
        result[scenario] = median_ms(lambda: store.list(month), samples)
    store.close_store()
    return result, rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench-bin", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--samples", type=int, default=200)
    a = ap.parse_args()
    per = {s: [] for s in SCENARIOS}
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template.sqlite"
        subprocess.run([a.bench_bin, "bridge", "--prepare", str(template)], check=True)
        for run in range(1, a.runs + 1):
            rust_path, py_path = Path(tmp) / f"rust-{run}.sqlite", Path(tmp) / f"py-{run}.sqlite"
            shutil.copy(template, rust_path)
            shutil.copy(template, py_path)
            out = subprocess.run(
                [a.bench_bin, "bridge", "--store", str(rust_path), "--samples", str(a.samples)],
                check=True, capture_output=True, text=True,
            ).stdout
            rust = {l["scenario"]: l for l in map(json.loads, out.splitlines())}
            py, rows = python_side(py_path, a.samples)
            for scenario in per:
                line = {
                    "bench": "bridge",
                    "scenario": scenario,
                    "run": run,
                    "samples": a.samples,
                    "bridge_ms": py[scenario],
                    "rust_ms": rust[scenario]["rust_ms"],
                }
                if scenario in rows:
                    line["rows"] = rows[scenario]
                    assert rows[scenario] == rust[scenario]["rows"], "both sides list the same rows"
                line["added_ms"] = round(line["bridge_ms"] - line["rust_ms"], 3)
                per[scenario].append(line)
                print(json.dumps(line), flush=True)
    for scenario, lines in per.items():
        b = statistics.median(l["bridge_ms"] for l in lines)
        r = statistics.median(l["rust_ms"] for l in lines)
        # Each run's Rust and Python sides ran back to back on copies of one store: the median
        # of the per-run differences is less exposed to the shared disk's drift than b - r.
        added = statistics.median(l["added_ms"] for l in lines)
        print(json.dumps({
            "bench": "bridge",
            "scenario": scenario,
            "run": "median",
            "runs": len(lines),
            "bridge_ms": round(b, 3),
            "rust_ms": round(r, 3),
            "added_ms": round(added, 3),
            "ratio": round(b / r, 2) if r else None,
            "target_added_ms": 0.2,
        }))


if __name__ == "__main__":
    main()
