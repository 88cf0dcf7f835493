# Headless Chromium for the staff console's browser tests, and CJK fonts so its screenshots
# (and LibreOffice's PDFs) show Chinese rather than boxes.
set -euo pipefail
source "$(dirname "$0")/../setup-lib.sh"

missing=()
need chromium || missing+=(chromium)
if ! need fc-list || [[ -z "$(fc-list :lang=zh family 2>/dev/null)" ]]; then
    missing+=(fonts-noto-cjk fontconfig)
fi
if ((${#missing[@]})); then
    apt_install "${missing[@]}"
fi
