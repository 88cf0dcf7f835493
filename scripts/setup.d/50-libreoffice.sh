# LibreOffice Calc (headless) and poppler's pdftotext: the ledger's print test converts an
# exported workbook to PDF and reads every page back (crates/ledger/tests/print.rs).
set -euo pipefail
source "$(dirname "$0")/../setup-lib.sh"

missing=()
need soffice || missing+=(libreoffice-calc)
need pdftotext || missing+=(poppler-utils)
if ((${#missing[@]})); then
    # Without recommends: no desktop integration, Java or help packs, a third of the download.
    apt_install --no-install-recommends "${missing[@]}"
fi
