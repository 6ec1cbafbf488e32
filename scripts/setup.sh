#!/usr/bin/env bash
# Prepare this machine for geo311, idempotently (`make setup` runs it; everything else needs it):
#   1. system packages (PostgreSQL, PostGIS, GDAL), installed only when missing;
#   2. the PostgreSQL cluster that DATABASE_URL points at, started if it is not running;
#   3. the virtualenv .venv, installed from requirements/lock.txt (skipped while up to date),
#      and the front-end map libraries from package-lock.json into node_modules;
#   4. the database role, database and extensions (local databases only; remote ones are checked).
# A second run changes nothing and takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

DATABASE_URL="${DATABASE_URL:-postgis://geo311:geo311@127.0.0.1:5432/geo311}"
PYTHON="${PYTHON:-python3}"
VENV=.venv
STAMP="$VENV/.installed"
export DEBIAN_FRONTEND=noninteractive

say() { printf 'setup: %s\n' "$*"; }
die() {
    printf 'setup: error: %s\n' "$*" >&2
    exit 1
}

# --- DATABASE_URL ---------------------------------------------------------------------------
# Parsed with the standard library only: the venv may not exist yet. The *_SQL values are SQL
# string literals, so the password reaches psql on stdin, never on a command line.
command -v "$PYTHON" >/dev/null || die "$PYTHON not found; install Python 3.11"
parsed="$(DATABASE_URL="$DATABASE_URL" "$PYTHON" -c '
import os, shlex
from urllib.parse import unquote, urlsplit
u = urlsplit(os.environ["DATABASE_URL"])
q = chr(39)
v = {"DB_SCHEME": u.scheme, "DB_HOST": unquote(u.hostname or ""), "DB_PORT": str(u.port or 5432),
     "DB_USER": unquote(u.username or ""), "DB_PASSWORD": unquote(u.password or ""),
     "DB_NAME": unquote(u.path.lstrip("/"))}
v.update({k + "_SQL": q + v[k].replace(q, q + q) + q for k in ("DB_USER", "DB_PASSWORD", "DB_NAME")})
print("\n".join(f"{k}={shlex.quote(x)}" for k, x in v.items()))
' 2>&1)" || die "cannot parse DATABASE_URL: ${parsed##*$'\n'}"
eval "$parsed"
[ "$DB_SCHEME" = postgis ] ||
    die "DATABASE_URL must start with postgis:// (got $DB_SCHEME://) so Django uses the PostGIS backend"
if [ -z "$DB_USER" ] || [ -z "$DB_NAME" ]; then die "DATABASE_URL needs a user and a database name"; fi
DB_SAFE_URL="postgis://$DB_USER@${DB_HOST:-localhost}:$DB_PORT/$DB_NAME" # for messages: no password

case "$DB_HOST" in
    "" | 127.0.0.1 | localhost | ::1) DB_LOCAL=1 ;;
    *) DB_LOCAL=0 ;;
esac
# Creating roles and databases needs the postgres superuser over the local socket (peer auth).
DB_MANAGED=0
if [ "$DB_LOCAL" = 1 ] && [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1; then
    DB_MANAGED=1
fi

# --- 1. system packages ---------------------------------------------------------------------
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
APT_UPDATED=0
apt_install() {
    if [ -n "$SUDO" ] && ! command -v sudo >/dev/null; then
        die "missing system packages: $*; install them as root (apt-get install $*)"
    fi
    say "installing $*"
    if [ "$APT_UPDATED" = 0 ]; then
        $SUDO apt-get update -qq
        APT_UPDATED=1
    fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
        >/tmp/geo311-apt.log 2>&1 || die "apt-get install $* failed; see /tmp/geo311-apt.log"
}
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
pg_major() { # newest PostgreSQL server installed: 15 on Debian 12, 17 on Debian 13
    local bin
    bin="$(printf '%s\n' /usr/lib/postgresql/*/bin/postgres | sort -V | tail -n 1)"
    [ -x "$bin" ] || return 0
    bin="${bin#/usr/lib/postgresql/}"
    echo "${bin%%/*}"
}
pg_ready() { command -v pg_isready >/dev/null && pg_isready -q -h "${DB_HOST:-127.0.0.1}" -p "$DB_PORT"; }

wanted=(gdal-bin libgdal-dev)
# `make test` drives Debian's chromium (headless, through Playwright) for the page tests.
if [ "${GEO311_SETUP_BROWSER:-0}" = 1 ]; then wanted+=(chromium); fi
# `make bench` loads the HTTP benchmarks with wrk (C, one thread): a load generator that takes
# little of the two cores the server under test needs.
if [ "${GEO311_SETUP_BENCH:-0}" = 1 ]; then wanted+=(wrk); fi
if [ "$DB_LOCAL" = 1 ]; then
    major="$(pg_major)"
    # A local server not installed from Debian packages (say, a container on this port) is used as is.
    if [ -z "$major" ] && ! pg_ready; then
        apt_install postgresql
        major="$(pg_major)"
        [ -n "$major" ] || die "postgresql installed but no server found under /usr/lib/postgresql"
    fi
    if [ -n "$major" ]; then wanted+=("postgresql-$major-postgis-3"); fi
fi
missing=()
for p in "${wanted[@]}"; do installed "$p" || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi

# --- 2. PostgreSQL running ------------------------------------------------------------------
if [ "$DB_LOCAL" = 1 ] && ! pg_ready; then
    command -v pg_lsclusters >/dev/null || die "PostgreSQL is not answering on port $DB_PORT"
    # The cluster to start is the one configured for DATABASE_URL's port.
    read -r ver name status < <(pg_lsclusters --no-header |
        awk -v port="$DB_PORT" '$3 == port { print $1, $2, $4; exit }') || true
    [ -n "${ver:-}" ] || die "no PostgreSQL cluster uses port $DB_PORT (see pg_lsclusters);" \
        "create one (pg_createcluster <version> main --port $DB_PORT) or change DATABASE_URL"
    say "starting PostgreSQL cluster $ver/$name (port $DB_PORT, was $status)"
    if [ -d /run/systemd/system ]; then
        $SUDO pg_ctlcluster "$ver" "$name" start
    else # containers and CI machines without systemd
        $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start
    fi
    for _ in $(seq 60); do
        pg_ready && break
        sleep 0.5
    done
    pg_ready || die "PostgreSQL $ver/$name started but does not answer on" \
        "${DB_HOST:-127.0.0.1}:$DB_PORT; see /var/log/postgresql/postgresql-$ver-$name.log"
fi

# --- 3. virtualenv ------------------------------------------------------------------------
is_py311() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; }
is_py311 "$PYTHON" || die "$PYTHON is $("$PYTHON" -V 2>&1); geo311 needs Python 3.11" \
    "(Django 5.2 with these pins); set PYTHON=/path/to/python3.11"
if [ -e "$VENV" ] && ! is_py311 "$VENV/bin/python"; then
    say "$VENV is broken or not Python 3.11; recreating it"
    rm -rf "$VENV"
fi
if [ ! -e "$VENV" ]; then
    say "creating $VENV"
    if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
        # Debian's python3 cannot create virtualenvs without python3-venv (ensurepip).
        rm -rf "$VENV"
        apt_install python3-venv
        "$PYTHON" -m venv "$VENV" || die "$PYTHON -m venv failed"
    fi
fi
if [ "$STAMP" -nt requirements/lock.txt ] && [ "$STAMP" -nt pyproject.toml ]; then
    : # up to date
else
    say "installing requirements/lock.txt into $VENV (log: /tmp/geo311-pip.log)"
    {
        "$VENV/bin/pip" install -r requirements/lock.txt &&
            "$VENV/bin/pip" install --no-deps -e .
    } >/tmp/geo311-pip.log 2>&1 || die "pip install failed; see /tmp/geo311-pip.log"
    touch "$STAMP"
fi

# --- 3b. front-end packages -----------------------------------------------------------------
# The map libraries (package.json) are served from our own static files, never from a CDN.
NPM_STAMP=node_modules/.installed
if [ "$NPM_STAMP" -nt package-lock.json ] && [ "$NPM_STAMP" -nt package.json ]; then
    : # up to date
else
    command -v npm >/dev/null || apt_install nodejs npm
    say "installing package-lock.json into node_modules (log: /tmp/geo311-npm.log)"
    npm ci --no-audit --no-fund >/tmp/geo311-npm.log 2>&1 || die "npm ci failed; see /tmp/geo311-npm.log"
    touch "$NPM_STAMP"
fi

# --- 4. database ----------------------------------------------------------------------------
if [ "$DB_MANAGED" = 1 ]; then
    # As the postgres superuser, over the unix socket: works with Debian's default pg_hba
    # (peer for local sockets), where TCP connections need a password.
    psql_admin() {
        runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$DB_PORT" "$@" >/dev/null
    }
    # Extensions go into template1 too, so the test database that pytest-django creates (as the
    # non-superuser app role) already has them.
    extensions="SET client_min_messages = warning;
        CREATE EXTENSION IF NOT EXISTS postgis;
        CREATE EXTENSION IF NOT EXISTS pg_trgm;"
    psql_admin -d template1 <<<"$extensions" || die "cannot create extensions in template1"
    psql_admin -d postgres <<SQL || die "cannot create role/database $DB_USER/$DB_NAME"
SELECT format('CREATE ROLE %I LOGIN CREATEDB PASSWORD %L', $DB_USER_SQL, $DB_PASSWORD_SQL)
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = $DB_USER_SQL) \gexec
SELECT format('ALTER ROLE %I LOGIN CREATEDB', $DB_USER_SQL)
FROM pg_roles WHERE rolname = $DB_USER_SQL AND NOT (rolcanlogin AND rolcreatedb) \gexec
SELECT format('CREATE DATABASE %I OWNER %I', $DB_NAME_SQL, $DB_USER_SQL)
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = $DB_NAME_SQL) \gexec
SQL
    psql_admin -d "$DB_NAME" <<<"$extensions" || die "cannot create extensions in $DB_NAME"
fi

# Check what Django will see: a TCP login with DATABASE_URL's credentials, and PostGIS.
problem="$(PGPASSWORD="$DB_PASSWORD" "$VENV/bin/python" -c '
import sys
import psycopg
host, port, user, dbname = sys.argv[1:]
try:  # the password comes from PGPASSWORD, kept off the command line
    with psycopg.connect(host=host or None, port=port, user=user, dbname=dbname,
                         connect_timeout=10) as conn:
        have = {r[0] for r in conn.execute("SELECT extname FROM pg_extension")}
except psycopg.Error as exc:
    print(f"cannot connect: {str(exc).strip()}")
    sys.exit()
if "postgis" not in have:
    print("the database has no postgis extension; a database admin must run"
          " CREATE EXTENSION postgis; (and CREATE EXTENSION pg_trgm;) in it")
' "$DB_HOST" "$DB_PORT" "$DB_USER" "$DB_NAME")"
if [ -n "$problem" ]; then
    hint=""
    if [ "$DB_LOCAL" = 1 ] && [ "$DB_MANAGED" = 0 ]; then
        hint=" (run this script as root to create the role, database and extensions)"
    elif [ "$DB_MANAGED" = 1 ] && [[ "$problem" == *"password authentication failed"* ]]; then
        hint=" (role $DB_USER already existed with another password; setup does not change it:"
        hint+=" runuser -u postgres -- psql -p $DB_PORT -c '\\password $DB_USER')"
    fi
    die "$DB_SAFE_URL: $problem$hint"
fi
say "ready: $VENV, $DB_SAFE_URL"
