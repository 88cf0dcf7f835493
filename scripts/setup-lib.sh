# Helpers for scripts/setup.d/*.sh (sourced; see scripts/test).

# Whether a command is on PATH.
need() { command -v "$1" >/dev/null 2>&1; }

# Runs a command as root: directly, or through `sudo -n`; otherwise says what to do and fails.
as_root() {
    if [[ "$(id -u)" == 0 ]]; then
        "$@"
    elif need sudo && sudo -n true 2>/dev/null; then
        sudo -n --preserve-env=DEBIAN_FRONTEND "$@"
    else
        echo "scripts/test: needs root to run: $*" >&2
        echo "  run it as root, or run that command yourself and start scripts/test again" >&2
        return 1
    fi
}

# Installs Debian packages (extra apt-get flags first, e.g. --no-install-recommends), running
# `apt-get update` once per scripts/test run.
apt_install() {
    if ! need apt-get; then
        echo "scripts/test: no apt-get here; install these yourself: $*" >&2
        return 1
    fi
    local marker="${SANJIN_SETUP_STATE:-/tmp}/apt-updated"
    if [[ ! -e "$marker" ]]; then
        as_root apt-get update -qq
        touch "$marker"
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
