# Python 3 and pytest: the phone bridge's test runs pytest on its generated Python bindings,
# with the `python3` on PATH (which may be a pyenv or other interpreter, not Debian's).
set -euo pipefail
source "$(dirname "$0")/../setup-lib.sh"

if python3 -m pytest --version >/dev/null 2>&1; then
    exit 0
fi
if ! need python3; then
    apt_install python3 python3-pip python3-pytest
fi
# Debian's package serves Debian's python3 only; another python3 on PATH (pyenv, say) needs pip.
if [[ "$(command -v python3)" == /usr/bin/python3 ]]; then
    apt_install python3-pytest 2>/dev/null || true
fi
if ! python3 -m pytest --version >/dev/null 2>&1; then
    if ! python3 -m pip --version >/dev/null 2>&1; then
        apt_install python3-pip
    fi
    python3 -m pip install -q pytest 2>/dev/null ||
        python3 -m pip install -q --break-system-packages pytest
fi
if ! python3 -m pytest --version >/dev/null 2>&1; then
    echo "scripts/test: pytest is still missing for $(command -v python3); install it with: python3 -m pip install pytest" >&2
    exit 1
fi
