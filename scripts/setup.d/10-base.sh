# Base build tools: a C compiler (the bundled SQLite, ring), pkg-config; Rust itself when absent.
set -euo pipefail
source "$(dirname "$0")/../setup-lib.sh"

if ! need cc || ! need make; then
    apt_install build-essential pkg-config
fi
if ! need cargo; then
    if ! need curl; then
        apt_install curl ca-certificates
    fi
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    echo "scripts/test: Rust installed in ~/.cargo (new shells find it; or source ~/.cargo/env)" >&2
fi
