# Python 3 and pytest: the phone bridge's test runs pytest on its generated Python bindings.
set -euo pipefail
source "$(dirname "$0")/../setup-lib.sh"

if python3 -m pytest --version >/dev/null 2>&1; then
    exit 0
fi
if ! need python3 || ! python3 -m pip --version >/dev/null 2>&1; then
    apt_install python3 python3-pip
fi
# Debian's own package first; pip (outside a venv, PEP 668 allowing) otherwise.
apt_install python3-pytest 2>/dev/null ||
    python3 -m pip install -q pytest 2>/dev/null ||
    python3 -m pip install -q --break-system-packages pytest
