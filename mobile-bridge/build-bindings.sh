#!/usr/bin/env bash
# Builds the bridge library for this machine and generates its Kotlin, Swift and Python bindings
# from it (UniFFI library mode) into mobile-bridge/bindings/ (git-ignored):
#
#   bindings/kotlin/org/sanjin/bridge/sanjin_mobile_bridge.kt
#   bindings/swift/SanjinBridge.swift, sanjin_mobile_bridgeFFI.h, sanjin_mobile_bridgeFFI.modulemap
#   bindings/python/sanjin_mobile_bridge.py (+ the host library next to it, importable as is)
#
# Usage: mobile-bridge/build-bindings.sh [--release]
# The generated code depends only on the library's exported interface, so bindings made from a
# host build serve the Android (.so) and iOS (.a) builds of the same source.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=debug
flags=()
if [[ "${1:-}" == "--release" ]]; then
    profile=release
    flags=(--release)
fi
target_dir="${CARGO_TARGET_DIR:-$(pwd)/target}"
out=mobile-bridge/bindings

cargo build "${flags[@]}" --locked -p sanjin-mobile-bridge --lib
cargo build "${flags[@]}" --locked -p sanjin-mobile-bridge --features cli --bin uniffi-bindgen

case "$(uname -s)" in
    Darwin) lib="$target_dir/$profile/libsanjin_mobile_bridge.dylib" ;;
    *) lib="$target_dir/$profile/libsanjin_mobile_bridge.so" ;;
esac
bindgen="$target_dir/$profile/uniffi-bindgen"

rm -rf "$out"
for language in kotlin swift python; do
    "$bindgen" generate --library "$lib" --language "$language" \
        --config mobile-bridge/bindgen.toml --out-dir "$out/$language" --no-format
done
cp "$lib" "$out/python/"
echo "bindings written to $out/ (from $lib)"
