# Node.js and npm, and the official JavaScript automerge the trace's test reads records with
# (`npm ci` in crates/core/tests/js, skipped while node_modules matches the lock file).
set -euo pipefail
source "$(dirname "$0")/../setup-lib.sh"

if ! need node || ! need npm; then
    apt_install nodejs npm
fi
js=crates/core/tests/js
# npm writes node_modules/.package-lock.json on every install: newer than the lock file means
# nothing changed since.
if [[ ! "$js/node_modules/.package-lock.json" -nt "$js/package-lock.json" ]]; then
    (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
fi
