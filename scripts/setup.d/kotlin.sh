#!/usr/bin/env bash
# What the bridge's Kotlin test (mobile-bridge/tests/kotlin.rs) needs: a JDK, JNA (the generated
# Kotlin calls the library through it, as on Android) and a Kotlin 2 compiler. Idempotent: checks
# first, installs only what is missing; unattended (root or `sudo -n`, CI=true, no stdin).
#
# - Debian's openjdk-17-jdk-headless and libjna-java (/usr/share/java/jna.jar);
# - the Kotlin compiler: Debian's `kotlin` (1.3) is too old for UniFFI's output, so the Kotlin 2.3
#   compiler shipped inside the PyPI package kotlin-jupyter-kernel (its `-all` jar holds
#   org.jetbrains.kotlin.cli.jvm.K2JVMCompiler, next to kotlin-stdlib).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

lib="$(dirname "$0")/../setup-lib.sh"
if [[ -f "$lib" ]]; then
    # shellcheck source=/dev/null
    source "$lib"   # need, as_root, apt_install (one apt-get update per scripts/test run)
else
    need() { command -v "$1" >/dev/null 2>&1; }
    updated=
    apt_install() {
        if [[ -z "$updated" ]]; then
            apt-get update -qq
            updated=1
        fi
        apt-get install -y -qq "$@" >/dev/null
    }
fi

if ! need javac || ! java -version >/dev/null 2>&1; then
    apt_install --no-install-recommends openjdk-17-jdk-headless
fi
if [[ ! -f /usr/share/java/jna.jar ]]; then
    apt_install --no-install-recommends libjna-java
fi
if ! need python3 || ! python3 -m pip --version >/dev/null 2>&1; then
    apt_install python3 python3-pip
fi
if ! python3 -c "import run_kotlin_kernel" >/dev/null 2>&1; then
    user=()
    [[ "$(id -u)" == 0 ]] || user=(--user)
    python3 -m pip install -q "${user[@]}" kotlin-jupyter-kernel 2>/dev/null ||
        python3 -m pip install -q "${user[@]}" --break-system-packages kotlin-jupyter-kernel
fi
jars="$(python3 -c 'import os, run_kotlin_kernel; print(os.path.dirname(run_kotlin_kernel.__file__))')/jars"
ls "$jars"/kotlin-jupyter-kernel-*-all.jar "$jars"/kotlin-stdlib-*.jar >/dev/null
echo "kotlin: $(java -version 2>&1 | head -1), JNA /usr/share/java/jna.jar, compiler in $jars"
