#!/usr/bin/env bash
# The bridge benchmark (issue 6): builds the release library and `sanjin-bench`, generates the
# Python bindings from the release library, and runs mobile-bridge/bench.py — JSON lines with
# `scenario`, `bridge_ms` (Python through the bindings) and `rust_ms` (the same calls in Rust).
#
# Usage: mobile-bridge/bench.sh [--runs 5] [--samples 200]
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-$(pwd)/target}"

cargo build --release --locked -p sanjin-mobile-bridge --lib
cargo build --release --locked -p sanjin-bench
# The generator's own speed does not matter: a dev build of it.
cargo build --locked -p sanjin-mobile-bridge --features cli --bin uniffi-bindgen

case "$(uname -s)" in
    Darwin) lib="$target_dir/release/libsanjin_mobile_bridge.dylib" ;;
    *) lib="$target_dir/release/libsanjin_mobile_bridge.so" ;;
esac
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$target_dir/debug/uniffi-bindgen" generate --library "$lib" --language python \
    --config mobile-bridge/bindgen.toml --out-dir "$out" --no-format >/dev/null
cp "$lib" "$out/"
PYTHONPATH="$out" PYTHONDONTWRITEBYTECODE=1 python3 mobile-bridge/bench.py \
    --bench-bin "$target_dir/release/sanjin-bench" "$@"
