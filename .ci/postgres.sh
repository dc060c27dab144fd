# shellcheck shell=bash
# Source from .ci/run: installs Debian's postgresql package when there is no initdb, so that the
# PostgreSQL log tests can start their own throwaway server (tests/pg_server.py). Nothing else:
# no server is started here. Safe to source: sets no shell options, defines no variables, never
# exits the calling shell; returns non-zero if the install fails.

_solidline_has_initdb() {
    command -v initdb >/dev/null 2>&1 && return 0
    local bin
    for bin in /usr/lib/postgresql/*/bin/initdb; do
        [ -x "$bin" ] && return 0
    done
    return 1
}

_solidline_install_postgres() {
    _solidline_has_initdb && return 0
    echo "postgres.sh: no initdb found; installing Debian's postgresql package" >&2
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null 2>&1 || {
            echo "postgres.sh: not root and no sudo: cannot install postgresql" >&2
            return 1
        }
        sudo="sudo"
    fi
    $sudo apt-get update && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
}

_solidline_install_postgres
_solidline_status=$?
unset -f _solidline_has_initdb _solidline_install_postgres
eval "unset _solidline_status; (exit $_solidline_status)"
