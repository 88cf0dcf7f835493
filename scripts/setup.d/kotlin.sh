#!/usr/bin/env bash
# What the bridge's Kotlin test (mobile-bridge/tests/kotlin.rs) needs: a JDK, JNA (the generated
# Kotlin calls the library through it, as on Android) and a Kotlin 2 compiler. Idempotent; runs as
# root with no stdin (CI=true); installs only what is missing.
#
# - Debian's openjdk-17-jdk-headless and libjna-java (/usr/share/java/jna.jar);
# - the Kotlin compiler: Debian's `kotlin` (1.3) is too old for UniFFI's output, so the Kotlin 2.3
#   compiler shipped inside the PyPI package kotlin-jupyter-kernel (its `-all` jar holds
#   org.jetbrains.kotlin.cli.jvm.K2JVMCompiler, next to kotlin-stdlib).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

updated=
apt_install() {
    if [[ -z "$updated" ]]; then
        apt-get update -qq
        updated=1
    fi
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v javac >/dev/null 2>&1 || ! java -version >/dev/null 2>&1; then
    apt_install openjdk-17-jdk-headless
fi
if [[ ! -f /usr/share/java/jna.jar ]]; then
    apt_install libjna-java
fi
if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
    apt_install python3 python3-pip
fi
if ! python3 -c "import run_kotlin_kernel" >/dev/null 2>&1; then
    python3 -m pip install -q kotlin-jupyter-kernel 2>/dev/null ||
        python3 -m pip install -q --break-system-packages kotlin-jupyter-kernel
fi
jars="$(python3 -c 'import os, run_kotlin_kernel; print(os.path.dirname(run_kotlin_kernel.__file__))')/jars"
ls "$jars"/kotlin-jupyter-kernel-*-all.jar "$jars"/kotlin-stdlib-*.jar >/dev/null
echo "kotlin: JDK $(java -version 2>&1 | head -1), JNA /usr/share/java/jna.jar, compiler in $jars"
