#!/usr/bin/env bash
# Provision and run the local services used by cdc's integration tests:
#
#   PostgreSQL  127.0.0.1:5432  (wal_level=logical, role/db "cdc", password "cdc")
#   MariaDB     127.0.0.1:3306  (row-based binlog with full metadata, user "cdc"/"cdc")
#   tansu       127.0.0.1:9092  (Kafka-protocol broker, SQLite storage)
#
# Usage:
#   scripts/services.sh up          install what is missing, configure, start, verify;
#                                   prints the export lines on stdout:
#                                     eval "$(scripts/services.sh up)"
#   scripts/services.sh down        stop tansu (PostgreSQL and MariaDB keep running)
#   scripts/services.sh down --all  stop tansu, PostgreSQL and MariaDB
#   scripts/services.sh status      one line per service (exit 3 if any is not running)
#   scripts/services.sh env         print the export lines only (no side effects)
#   scripts/services.sh reset-broker  wipe the broker's storage (every topic) and restart it
#   scripts/services.sh index-headers [DB]  create tansu's header index (up/reset-broker do it)
#
# Targets Debian 12 without systemd or docker: daemons are started directly.
# Everything except the export lines goes to stderr.  Idempotent: a second `up`
# changes nothing and takes a few seconds.
#
# Environment:
#   CDC_SERVICES_DIR  state directory for tansu (pid file, log, SQLite database)
#                     default /var/lib/cdc-services
#   CDC_PG_VERSION    PostgreSQL major version to use (default: newest in /etc/postgresql)
set -Eeuo pipefail

PG_URL=postgres://cdc:cdc@127.0.0.1:5432/cdc
MYSQL_URL=mysql://cdc:cdc@127.0.0.1:3306
KAFKA_BROKERS=127.0.0.1:9092

HOST=127.0.0.1
PG_PORT=5432
MY_PORT=3306
KAFKA_PORT=9092

STATE_DIR=$(realpath -m -- "${CDC_SERVICES_DIR:-/var/lib/cdc-services}")
TANSU_PID_FILE=$STATE_DIR/tansu.pid
TANSU_LOG=$STATE_DIR/tansu.log
TANSU_INSTALL_LOG=$STATE_DIR/tansu-install.log
# tansu resolves the sqlite URL's path relative to its working directory; it is
# started with cwd=/ so this absolute form points at $STATE_DIR/tansu.db.
TANSU_STORAGE=sqlite://$STATE_DIR/tansu.db
TANSU_ARGS=(
  broker
  --cluster-id cdc
  --listener-url "tcp://$HOST:$KAFKA_PORT"
  --advertised-listener-url "tcp://$HOST:$KAFKA_PORT"
  --storage-engine "$TANSU_STORAGE"
)
TANSU_INSTALL_CMD=(install tansu --locked --features 'dynostore,libsql')

MARIADBD=/usr/sbin/mariadbd
MY_CNF=/etc/mysql/my.cnf
MY_CONF_DIR=/etc/mysql/mariadb.conf.d
MY_CDC_CNF=$MY_CONF_DIR/90-cdc.cnf

PG_HBA_LINES=(
  "host all cdc 127.0.0.1/32 scram-sha-256"
  "host replication cdc 127.0.0.1/32 scram-sha-256"
  "host all cdc ::1/128 scram-sha-256"
  "host replication cdc ::1/128 scram-sha-256"
)

# ----------------------------------------------------------------------------
# helpers

log() { printf 'services: %s\n' "$*" >&2; }

die() {
  printf 'services: ERROR: %s\n' "$*" >&2
  exit 1
}

# Show the end of a log file on stderr (used before dying).
show_log_tail() {
  local file=$1
  if priv test -r "$file"; then
    printf 'services: ---- last lines of %s ----\n' "$file" >&2
    priv tail -n 25 "$file" >&2 || true
    printf 'services: ----\n' >&2
  fi
}

trap 'rc=$?; printf "services: ERROR: command failed (exit %s, line %s): %s\n" "$rc" "$LINENO" "$BASH_COMMAND" >&2' ERR

if [[ $(id -u) -eq 0 ]]; then
  IS_ROOT=1
else
  IS_ROOT=0
fi

# Run a command with root privileges.
priv() {
  if ((IS_ROOT)); then
    "$@"
  else
    command -v sudo >/dev/null || die "not running as root and sudo is not installed (needed for: $*)"
    sudo -- "$@"
  fi
}

# Run a command as another (system) user.
as_user() {
  local user=$1
  shift
  if ((IS_ROOT)); then
    runuser -u "$user" -- "$@"
  else
    command -v sudo >/dev/null || die "not running as root and sudo is not installed (needed to run as $user: $*)"
    sudo -u "$user" -- "$@"
  fi
}

# Is a TCP port accepting connections?
tcp_open() {
  # shellcheck disable=SC2016 # $1/$2 are expanded by the inner bash
  timeout 2 bash -c 'exec 8<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

ssd() {
  local s
  for s in start-stop-daemon /usr/sbin/start-stop-daemon /sbin/start-stop-daemon; do
    if command -v "$s" >/dev/null 2>&1; then
      "$s" "$@"
      return
    fi
  done
  die "start-stop-daemon not found (it is part of Debian's dpkg package)"
}

APT_UPDATED=0

pkg_installed() {
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

# Install the given Debian packages if any of them is missing.
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    pkg_installed "$p" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "installing Debian packages: ${missing[*]}"
  if ((!APT_UPDATED)); then
    priv env DEBIAN_FRONTEND=noninteractive apt-get update >&2 ||
      die "apt-get update failed (see the apt output above)"
    APT_UPDATED=1
  fi
  priv env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
    die "apt-get install ${missing[*]} failed (see the apt output above)"
}

# Write $2 (plus a trailing newline) to file $1 unless it already has exactly
# that content.  Returns 0 when the file was written, 1 when it was unchanged.
write_if_changed() {
  local path=$1 content=$2
  if priv test -f "$path" && [[ $(priv cat "$path") == "$content" ]]; then
    return 1
  fi
  log "writing $path"
  printf '%s\n' "$content" | priv tee "$path" >/dev/null
  return 0
}

ensure_state_dir() {
  if [[ ! -d $STATE_DIR ]]; then
    priv mkdir -p "$STATE_DIR"
    ((IS_ROOT)) || priv chown "$(id -u):$(id -g)" "$STATE_DIR"
  fi
  [[ -w $STATE_DIR ]] || die "state directory $STATE_DIR is not writable (set CDC_SERVICES_DIR)"
}

# Serialise concurrent up/down runs.  fd 9 holds the lock; every daemon start
# closes fd 9 so that a daemon never inherits (and keeps) the lock.
take_lock() {
  exec 9>>"$STATE_DIR/services.lock"
  if ! flock -n 9; then
    log "another scripts/services.sh is running; waiting for it (lock $STATE_DIR/services.lock)"
    flock -w 3600 9 || die "timed out waiting for the lock $STATE_DIR/services.lock"
  fi
}

# ----------------------------------------------------------------------------
# PostgreSQL

PG_V=
PG_CONF_DIR=
PG_LOG=

pg_detect() {
  local versions
  if [[ -n ${CDC_PG_VERSION:-} ]]; then
    PG_V=$CDC_PG_VERSION
  else
    versions=$(find /etc/postgresql -mindepth 2 -maxdepth 2 -name main -type d 2>/dev/null |
      awk -F/ '{print $4}' | sort -V) || true
    PG_V=$(tail -n 1 <<<"$versions")
  fi
  PG_CONF_DIR=/etc/postgresql/$PG_V/main
  PG_LOG=/var/log/postgresql/postgresql-$PG_V-main.log
  [[ -n $PG_V && -f $PG_CONF_DIR/postgresql.conf ]]
}

pg_running() {
  [[ -n $PG_V ]] && priv pg_ctlcluster "$PG_V" main status >/dev/null 2>&1
}

# psql as the postgres superuser over the cluster's unix socket.
pg_psql() {
  as_user postgres psql --cluster "$PG_V/main" -X -q -At -v ON_ERROR_STOP=1 -U postgres -d postgres "$@"
}

# Value of a setting as PostgreSQL would read it from the config files now.
pg_file_setting() {
  as_user postgres "/usr/lib/postgresql/$PG_V/bin/postgres" -C "$1" -c "config_file=$PG_CONF_DIR/postgresql.conf"
}

pg_wait_ready() {
  local i
  for ((i = 0; i < 60; i++)); do
    if pg_psql -c 'select 1' >/dev/null 2>&1; then
      return 0
    fi
    sleep 1
  done
  show_log_tail "$PG_LOG"
  die "PostgreSQL $PG_V/main does not accept connections after 60s; see $PG_LOG"
}

pg_start() {
  log "starting PostgreSQL $PG_V/main"
  if ! priv pg_ctlcluster --skip-systemctl-redirect "$PG_V" main start </dev/null >&2 3>&- 9>&-; then
    show_log_tail "$PG_LOG"
    die "PostgreSQL $PG_V/main failed to start; see $PG_LOG (and: pg_lsclusters)"
  fi
  pg_wait_ready
}

pg_restart() {
  log "restarting PostgreSQL $PG_V/main ($1)"
  if ! priv pg_ctlcluster --skip-systemctl-redirect "$PG_V" main restart </dev/null >&2 3>&- 9>&-; then
    show_log_tail "$PG_LOG"
    die "PostgreSQL $PG_V/main failed to restart; see $PG_LOG"
  fi
  pg_wait_ready
}

pg_install() {
  ensure_packages postgresql
  command -v psql >/dev/null || ensure_packages postgresql-client
  if ! pg_detect; then
    local bin_version
    bin_version=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' 2>/dev/null |
      awk -F/ '{print $5}' | sort -V | tail -n 1)
    [[ -n $bin_version ]] || die "PostgreSQL is installed but no server binary was found under /usr/lib/postgresql"
    log "creating PostgreSQL cluster $bin_version/main"
    priv pg_createcluster "$bin_version" main </dev/null >&2 3>&- 9>&- ||
      die "pg_createcluster $bin_version main failed"
    pg_detect || die "no PostgreSQL cluster found in /etc/postgresql after pg_createcluster"
  fi
}

# Write config files; sets PG_CONF_CHANGED=1 if anything was modified.
PG_CONF_CHANGED=0
pg_configure() {
  local conf=$PG_CONF_DIR/postgresql.conf hba=$PG_CONF_DIR/pg_hba.conf

  # conf.d must be included by postgresql.conf (Debian's default does).
  if ! priv grep -Eq "^[[:space:]]*include_dir[[:space:]]*=?[[:space:]]*'?(conf\.d|$PG_CONF_DIR/conf\.d)/?'?" "$conf"; then
    log "adding include_dir = 'conf.d' to $conf"
    printf "\n# added by cdc scripts/services.sh\ninclude_dir = 'conf.d'\n" | priv tee -a "$conf" >/dev/null
    PG_CONF_CHANGED=1
  fi
  if ! priv test -d "$PG_CONF_DIR/conf.d"; then
    priv install -d -o postgres -g postgres "$PG_CONF_DIR/conf.d"
  fi

  if write_if_changed "$PG_CONF_DIR/conf.d/90-cdc.conf" "# managed by cdc scripts/services.sh
wal_level = logical
max_replication_slots = 32
max_wal_senders = 32
password_encryption = scram-sha-256"; then
    priv chown postgres:postgres "$PG_CONF_DIR/conf.d/90-cdc.conf"
    PG_CONF_CHANGED=1
  fi

  # listen_addresses must include 127.0.0.1 and the port must be 5432.  Other
  # files (e.g. conf.d/90-ci.conf) may already set them; only if the effective
  # values are wrong, override them in a file that sorts last.
  local listen port extra=""
  listen=$(pg_file_setting listen_addresses) || die "cannot read PostgreSQL settings (postgres -C listen_addresses)"
  port=$(pg_file_setting port) || die "cannot read PostgreSQL settings (postgres -C port)"
  if ! tr -s ', ' '\n' <<<"$listen" | grep -Eqx '127\.0\.0\.1|localhost|\*|0\.0\.0\.0'; then
    if [[ -n ${listen// /} ]]; then
      extra+="listen_addresses = '$listen,127.0.0.1'"$'\n'
    else
      extra+="listen_addresses = '127.0.0.1'"$'\n'
    fi
  fi
  if [[ $port != "$PG_PORT" ]]; then
    extra+="port = $PG_PORT"$'\n'
  fi
  if [[ -n $extra ]]; then
    log "PostgreSQL would listen on '$listen' port $port; overriding in conf.d/99-cdc-listen.conf"
    printf '# managed by cdc scripts/services.sh\n%s' "$extra" | priv tee "$PG_CONF_DIR/conf.d/99-cdc-listen.conf" >/dev/null
    priv chown postgres:postgres "$PG_CONF_DIR/conf.d/99-cdc-listen.conf"
    PG_CONF_CHANGED=1
  fi

  # pg_hba.conf: our lines go before the first rule (so before any catch-all).
  local current missing=() line
  current=$(priv cat "$hba" | awk '{$1=$1; print}')
  for line in "${PG_HBA_LINES[@]}"; do
    grep -Fxq -- "$line" <<<"$current" || missing+=("$line")
  done
  if ((${#missing[@]})); then
    log "adding ${#missing[@]} cdc line(s) to $hba"
    local add new
    add=$(printf '%s\n' "${missing[@]}")
    if ! grep -Fq '# cdc test user (scripts/services.sh)' <<<"$current"; then
      add="# cdc test user (scripts/services.sh)"$'\n'"$add"
    fi
    new=$(priv cat "$hba" | ADD="$add" awk '
      !done && $0 !~ /^[[:space:]]*(#|$)/ { print ENVIRON["ADD"]; done = 1 }
      { print }
      END { if (!done) print ENVIRON["ADD"] }')
    printf '%s\n' "$new" | priv tee "$hba" >/dev/null # tee keeps owner and mode
    PG_CONF_CHANGED=1
  fi
}

pg_ensure_role_and_db() {
  local state owner
  state=$(pg_psql -c "SELECT rolcanlogin AND rolreplication AND rolcreatedb AND coalesce(rolpassword LIKE 'SCRAM-SHA-256\$%', false) FROM pg_authid WHERE rolname = 'cdc'")
  if [[ -z $state ]]; then
    log "creating PostgreSQL role cdc"
    pg_psql -c "SET password_encryption = 'scram-sha-256'" \
      -c "CREATE ROLE cdc WITH LOGIN REPLICATION CREATEDB PASSWORD 'cdc'" >&2
  elif [[ $state != t ]] || ! PGPASSWORD=cdc psql -X -q -At -h "$HOST" -p "$PG_PORT" -U cdc -d postgres -c 'select 1' >/dev/null 2>&1; then
    log "updating PostgreSQL role cdc (attributes/password)"
    pg_psql -c "SET password_encryption = 'scram-sha-256'" \
      -c "ALTER ROLE cdc WITH LOGIN REPLICATION CREATEDB PASSWORD 'cdc'" >&2
  fi
  owner=$(pg_psql -c "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'cdc'")
  if [[ -z $owner ]]; then
    log "creating PostgreSQL database cdc"
    pg_psql -c 'CREATE DATABASE cdc OWNER cdc' >&2
  elif [[ $owner != cdc ]]; then
    log "changing owner of PostgreSQL database cdc from $owner to cdc"
    pg_psql -c 'ALTER DATABASE cdc OWNER TO cdc' >&2
  fi
}

pg_up() {
  pg_install
  pg_configure

  if ! pg_running; then
    pg_start
  else
    local pwenc
    pwenc=$(pg_psql -c 'SHOW password_encryption')
    if ((PG_CONF_CHANGED)) || [[ $pwenc != scram-sha-256 ]]; then
      log "reloading PostgreSQL configuration"
      pg_psql -c 'SELECT pg_reload_conf()' >/dev/null
      sleep 1
    fi
    local running want pending
    running=$(pg_psql -c "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE name IN ('wal_level', 'max_replication_slots', 'max_wal_senders', 'listen_addresses', 'port')")
    want="listen_addresses=$(pg_file_setting listen_addresses) max_replication_slots=32 max_wal_senders=32 port=$PG_PORT wal_level=logical"
    pending=$(pg_psql -c "SELECT string_agg(name, ',') FROM pg_settings WHERE pending_restart")
    if [[ $running != "$want" ]]; then
      pg_restart "running: $running; wanted: $want"
    elif [[ -n $pending ]]; then
      pg_restart "settings pending restart: $pending"
    fi
  fi

  local wal
  wal=$(pg_psql -c 'SHOW wal_level')
  [[ $wal == logical ]] ||
    die "PostgreSQL wal_level is '$wal' after restart, expected 'logical'; check $PG_CONF_DIR/conf.d/ (another file overrides 90-cdc.conf?)"

  pg_ensure_role_and_db

  # Verify as the cdc user over TCP with the password, plain and replication.
  PGPASSWORD=cdc psql -X -q -At -h "$HOST" -p "$PG_PORT" -U cdc -d cdc -c 'select 1' >/dev/null ||
    die "cannot connect to PostgreSQL as cdc at $HOST:$PG_PORT (check $PG_CONF_DIR/pg_hba.conf and $PG_LOG)"
  psql -X -q -At "host=$HOST port=$PG_PORT user=cdc password=cdc dbname=cdc replication=database" -c 'IDENTIFY_SYSTEM' >/dev/null ||
    die "PostgreSQL replication connection as cdc failed (check $PG_CONF_DIR/pg_hba.conf replication lines and $PG_LOG)"
  log "PostgreSQL $PG_V/main ready at $HOST:$PG_PORT (wal_level=logical)"
}

pg_stop() {
  if pg_detect && pg_running; then
    log "stopping PostgreSQL $PG_V/main"
    priv pg_ctlcluster --skip-systemctl-redirect "$PG_V" main stop </dev/null >&2 3>&- 9>&- ||
      die "failed to stop PostgreSQL $PG_V/main; see $PG_LOG"
  else
    log "PostgreSQL is not running"
  fi
}

pg_status() {
  if ! pg_detect; then
    echo "postgresql: not installed"
    return 1
  fi
  if pg_running; then
    local s
    s=$(pg_psql -c "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE name IN ('wal_level', 'max_replication_slots', 'max_wal_senders', 'port')" 2>/dev/null) || s="(cannot query)"
    echo "postgresql: running $HOST:$PG_PORT cluster=$PG_V/main $s"
  else
    echo "postgresql: stopped cluster=$PG_V/main (log $PG_LOG)"
    return 1
  fi
}

# ----------------------------------------------------------------------------
# MariaDB

MY_SETTINGS_QUERY="SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata, @@server_id, @@gtid_strict_mode, @@log_slave_updates, @@binlog_expire_logs_seconds, @@max_connections"
MY_SETTINGS_WANT=$'1\tROW\tFULL\tFULL\t1\t1\t1\t604800\t500'

my_sql() {
  priv mariadb --batch --skip-column-names "$@"
}

my_process() {
  pgrep -x mariadbd >/dev/null 2>&1 || pgrep -x mysqld >/dev/null 2>&1
}

my_alive() {
  my_sql -e 'select 1' >/dev/null 2>&1
}

# Effective server option from the config files (e.g. datadir, log-error).
my_option() {
  local name=$1 opts
  opts=$(priv "$MARIADBD" --print-defaults 2>/dev/null | tail -n +2 | tr ' ' '\n') || true
  awk -v n="$name" '{
      split($0, kv, "=")
      k = kv[1]; sub(/^--/, "", k); gsub(/_/, "-", k)
      if (k == n) { v = substr($0, length(kv[1]) + 2) }
    } END { print v }' <<<"$opts"
}

MY_LOG=
my_log_path() {
  MY_LOG=$(my_option log-error)
}

my_wait_ready() {
  local i
  for ((i = 0; i < 90; i++)); do
    if my_alive; then
      return 0
    fi
    if ! my_process && ((i > 3)); then
      break
    fi
    sleep 1
  done
  show_log_tail "${MY_LOG:-/var/log/mysql/error.log}"
  die "MariaDB is not answering 'mariadb -e \"select 1\"'; see ${MY_LOG:-/var/log/mysql/error.log}"
}

my_start() {
  local datadir extra=()
  datadir=$(my_option datadir)
  datadir=${datadir:-/var/lib/mysql}
  my_log_path
  if [[ -z $MY_LOG ]]; then
    # Stock Debian logs to stderr (lost when daemonised): log to a file instead.
    MY_LOG=/var/log/mysql/error.log
    extra+=("--log-error=$MY_LOG")
  fi
  if [[ $MY_LOG == /var/log/mysql/* ]] && ! priv test -d /var/log/mysql; then
    priv install -d -o mysql -g adm -m 2750 /var/log/mysql
  fi
  if ! priv test -d "$datadir/mysql"; then
    log "initialising the MariaDB data directory $datadir"
    priv install -d -o mysql -g mysql "$datadir"
    priv mariadb-install-db --user=mysql --datadir="$datadir" </dev/null >&2 3>&- 9>&- ||
      die "mariadb-install-db failed for $datadir"
  fi
  priv mkdir -p /run/mysqld
  priv chown mysql:mysql /run/mysqld
  log "starting MariaDB"
  priv start-stop-daemon --start --oknodo --background --exec "$MARIADBD" -- --user=mysql "${extra[@]}" \
    </dev/null >&2 3>&- 9>&- || {
    show_log_tail "$MY_LOG"
    die "failed to start MariaDB; see $MY_LOG"
  }
  my_wait_ready
}

my_stop() {
  log "stopping MariaDB"
  priv mariadb-admin shutdown >&2 || die "mariadb-admin shutdown failed; see ${MY_LOG:-/var/log/mysql/error.log}"
  local i
  for ((i = 0; i < 120; i++)); do
    my_process || return 0
    sleep 1
  done
  die "MariaDB did not exit within 120s after shutdown; see ${MY_LOG:-/var/log/mysql/error.log}"
}

my_configure() {
  priv test -d "$MY_CONF_DIR" || priv mkdir -p "$MY_CONF_DIR"
  if write_if_changed "$MY_CDC_CNF" "# managed by cdc scripts/services.sh
[mysqld]
server_id = 1
log_bin = mysql-bin
binlog_format = ROW
binlog_row_image = FULL
binlog_row_metadata = FULL
gtid_strict_mode = ON
log_slave_updates = ON
binlog_expire_logs_seconds = 604800
max_connections = 500"; then
    priv chmod 644 "$MY_CDC_CNF"
  fi

  # my.cnf must include the directory (stock Debian does via mariadb.cnf).
  if ! priv "$MARIADBD" --print-defaults 2>/dev/null | grep -q -- '--binlog_row_metadata=FULL'; then
    if ! priv grep -Eq "^[[:space:]]*!includedir[[:space:]]+${MY_CONF_DIR//./\\.}/?[[:space:]]*$" "$MY_CNF"; then
      log "adding !includedir $MY_CONF_DIR/ to $MY_CNF"
      printf '\n# added by cdc scripts/services.sh\n!includedir %s/\n' "$MY_CONF_DIR" | priv tee -a "$MY_CNF" >/dev/null
    fi
    priv "$MARIADBD" --print-defaults 2>/dev/null | grep -q -- '--binlog_row_metadata=FULL' ||
      die "$MY_CDC_CNF is not read by MariaDB (check the !include/!includedir lines of $MY_CNF; try: $MARIADBD --print-defaults)"
  fi
}

my_ensure_users() {
  local ok=1 host grants pw
  for host in % localhost 127.0.0.1; do
    pw=$(my_sql -e "SELECT authentication_string = PASSWORD('cdc') FROM mysql.user WHERE User = 'cdc' AND Host = '$host'")
    if [[ $pw != 1 ]]; then
      ok=0
      break
    fi
    grants=$(my_sql -e "SHOW GRANTS FOR 'cdc'@'$host'" 2>/dev/null) || true
    if ! grep -q '^GRANT ALL PRIVILEGES ON \*\.\* TO' <<<"$grants"; then
      ok=0
      break
    fi
  done
  ((ok)) && return 0
  log "creating/updating MariaDB users cdc@'%', cdc@localhost, cdc@127.0.0.1"
  local sql=""
  for host in % localhost 127.0.0.1; do
    sql+="CREATE USER IF NOT EXISTS 'cdc'@'$host' IDENTIFIED BY 'cdc';"
    sql+="ALTER USER 'cdc'@'$host' IDENTIFIED BY 'cdc';"
    sql+="GRANT ALL PRIVILEGES ON *.* TO 'cdc'@'$host';"
  done
  my_sql -e "$sql" >&2 || die "failed to create the MariaDB cdc users"
}

my_up() {
  if [[ ! -x $MARIADBD ]] || ! command -v mariadb >/dev/null; then
    ensure_packages mariadb-server mariadb-client
  fi
  [[ -x $MARIADBD ]] || die "$MARIADBD not found after installing mariadb-server"
  my_configure
  my_log_path

  if ! my_process; then
    my_start
  elif ! my_alive; then
    log "MariaDB process exists but does not answer yet; waiting"
    my_wait_ready
  fi

  local got
  got=$(my_sql -e "$MY_SETTINGS_QUERY")
  if [[ $got != "$MY_SETTINGS_WANT" ]]; then
    log "MariaDB runs with other settings than $MY_CDC_CNF; restarting"
    my_stop
    my_start
    got=$(my_sql -e "$MY_SETTINGS_QUERY")
    [[ $got == "$MY_SETTINGS_WANT" ]] ||
      die "MariaDB settings after restart are [$got], expected [$MY_SETTINGS_WANT] ($MY_SETTINGS_QUERY); another config file overrides $MY_CDC_CNF? try: $MARIADBD --print-defaults"
  fi

  my_ensure_users

  mariadb -h "$HOST" -P "$MY_PORT" -u cdc -pcdc --batch -e 'SHOW MASTER STATUS' >/dev/null ||
    die "cannot run SHOW MASTER STATUS as cdc over TCP at $HOST:$MY_PORT; see ${MY_LOG:-/var/log/mysql/error.log}"
  log "MariaDB ready at $HOST:$MY_PORT (log_bin=1 binlog_format=ROW binlog_row_metadata=FULL)"
}

my_status() {
  if [[ ! -x $MARIADBD ]]; then
    echo "mariadb: not installed"
    return 1
  fi
  if my_alive; then
    local s
    s=$(my_sql -e "SELECT CONCAT('log_bin=', @@log_bin, ' binlog_format=', @@binlog_format, ' binlog_row_metadata=', @@binlog_row_metadata, ' server_id=', @@server_id, ' gtid_strict_mode=', @@gtid_strict_mode)" 2>/dev/null) || s="(cannot query)"
    echo "mariadb: running $HOST:$MY_PORT $s"
  else
    my_log_path
    echo "mariadb: stopped (log ${MY_LOG:-/var/log/mysql/error.log})"
    return 1
  fi
}

# ----------------------------------------------------------------------------
# tansu

find_tansu() {
  local p
  for p in "$(command -v tansu 2>/dev/null || true)" "${CARGO_HOME:-$HOME/.cargo}/bin/tansu" "$HOME/.cargo/bin/tansu"; do
    if [[ -n $p && -x $p ]]; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

find_cargo() {
  local p
  for p in "$(command -v cargo 2>/dev/null || true)" "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" "$HOME/.cargo/bin/cargo"; do
    if [[ -n $p && -x $p ]]; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

TANSU=
tansu_install() {
  TANSU=$(find_tansu) && return 0

  if pgrep -f 'cargo install tansu' >/dev/null 2>&1; then
    local waited=0
    log "a 'cargo install tansu' is already running (pids: $(pgrep -f 'cargo install tansu' | tr '\n' ' ')); waiting for it to finish"
    while pgrep -f 'cargo install tansu' >/dev/null 2>&1; do
      sleep 10
      waited=$((waited + 10))
      ((waited % 60 == 0)) && log "still waiting for the running 'cargo install tansu' (${waited}s)"
      ((waited < 3600)) || die "the running 'cargo install tansu' did not finish within 60 minutes"
    done
    TANSU=$(find_tansu) && return 0
    log "the other 'cargo install tansu' finished without installing tansu; installing it here"
  fi

  # Build dependencies (a C toolchain for the bundled SQLite, zstd, lz4, aws-lc...).
  ensure_packages gcc g++ libc6-dev make pkg-config ca-certificates
  local cargo
  if ! cargo=$(find_cargo); then
    ensure_packages curl
    log "cargo not found: installing the Rust toolchain with rustup (https://sh.rustup.rs)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >&2 ||
      die "rustup installation failed"
    cargo=$(find_cargo) || die "cargo still not found after installing rustup"
  fi
  log "installing tansu: cargo ${TANSU_INSTALL_CMD[*]} (takes ~8 minutes; log $TANSU_INSTALL_LOG)"
  if ! "$cargo" "${TANSU_INSTALL_CMD[@]}" </dev/null 2>&1 | tee "$TANSU_INSTALL_LOG" >&2; then
    die "cargo ${TANSU_INSTALL_CMD[*]} failed; see $TANSU_INSTALL_LOG"
  fi
  TANSU=$(find_tansu) || die "tansu not found after cargo install (looked in PATH and ${CARGO_HOME:-$HOME/.cargo}/bin)"
}

# Print the pid of our running tansu (from the pid file), or fail.
tansu_pid() {
  local pid
  [[ -f $TANSU_PID_FILE ]] || return 1
  pid=$(<"$TANSU_PID_FILE")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == *tansu* ]] || return 1
  echo "$pid"
}

# The arguments (after argv[0]) of a running process, one per line.
proc_args() {
  tail -z -n +2 "/proc/$1/cmdline" | tr '\0' '\n'
}

tansu_wait_ready() {
  local pid=$1 i
  for ((i = 0; i < 60; i++)); do
    tcp_open "$HOST" "$KAFKA_PORT" && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      show_log_tail "$TANSU_LOG"
      die "tansu exited right after starting; see $TANSU_LOG"
    fi
    sleep 0.5
  done
  show_log_tail "$TANSU_LOG"
  die "tansu (pid $pid) does not accept connections on $HOST:$KAFKA_PORT after 30s; see $TANSU_LOG"
}

# tansu 0.6.0 looks up each fetched record's headers by (topition, offset_id) in its SQLite
# `header` table and creates no index for it: without one, reading a topic with headers pegs the
# broker for minutes. Create it once the broker has created its schema (safe while it runs).
# Usage: tansu_index_headers DB_FILE [WAIT_SECONDS]
tansu_index_headers() {
  local db=$1 wait=${2:-60}
  python3 - "$db" "$wait" <<'PY' || die "could not create the header index in $db"
import sqlite3, sys, time
db, wait = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + wait
while True:
    try:
        c = sqlite3.connect(f"file:{db}?mode=rw", uri=True, timeout=10)
        if c.execute("select 1 from sqlite_master where type='table' and name='header'").fetchone():
            c.execute("create index if not exists header_topition_offset on header(topition, offset_id)")
            c.commit()
            c.close()
            break
        c.close()
    except sqlite3.OperationalError as e:
        if time.monotonic() >= deadline:
            sys.exit(f"services: {db}: {e}")
    if time.monotonic() >= deadline:
        sys.exit(f"services: {db} has no header table after {wait:.0f}s")
    time.sleep(0.2)
PY
  log "header index header_topition_offset present in $db"
}

tansu_stop() {
  local pid i
  if ! pid=$(tansu_pid); then
    rm -f "$TANSU_PID_FILE"
    log "tansu is not running"
    return 0
  fi
  log "stopping tansu (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "tansu did not exit within 20s of SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$TANSU_PID_FILE"
}

tansu_start() {
  if tcp_open "$HOST" "$KAFKA_PORT"; then
    local who=""
    command -v ss >/dev/null && who=$(ss -ltnp "sport = :$KAFKA_PORT" 2>/dev/null | tail -n +2)
    die "$HOST:$KAFKA_PORT is already in use by a process not started by this script (no live pid in $TANSU_PID_FILE)${who:+: $who}"
  fi
  rm -f "$TANSU_PID_FILE"
  log "starting tansu: $TANSU ${TANSU_ARGS[*]} (log $TANSU_LOG)"
  printf '==== %s scripts/services.sh: starting %s %s\n' "$(date -Is)" "$TANSU" "${TANSU_ARGS[*]}" >>"$TANSU_LOG"
  ssd --start --background --make-pidfile --pidfile "$TANSU_PID_FILE" --chdir / \
    --output "$TANSU_LOG" --exec "$TANSU" -- "${TANSU_ARGS[@]}" </dev/null >&2 3>&- 9>&- ||
    die "start-stop-daemon failed to start tansu; see $TANSU_LOG"
  local pid i
  for ((i = 0; i < 20; i++)); do
    [[ -s $TANSU_PID_FILE ]] && break
    sleep 0.1
  done
  pid=$(<"$TANSU_PID_FILE")
  tansu_wait_ready "$pid"
}

tansu_up() {
  tansu_install
  local pid
  if pid=$(tansu_pid); then
    if [[ $(proc_args "$pid") != "$(printf '%s\n' "${TANSU_ARGS[@]}")" ]]; then
      log "tansu (pid $pid) runs with other arguments; restarting it"
      tansu_stop
      tansu_start
    elif ! tcp_open "$HOST" "$KAFKA_PORT"; then
      tansu_wait_ready "$pid"
    fi
  else
    tansu_start
  fi
  tansu_index_headers "$STATE_DIR/tansu.db"
  log "tansu ready at $HOST:$KAFKA_PORT (pid $(<"$TANSU_PID_FILE"), storage $TANSU_STORAGE)"
}

tansu_status() {
  local pid storage
  if pid=$(tansu_pid); then
    storage=$(proc_args "$pid" | awk 'prev == "--storage-engine" { print; exit } { prev = $0 }')
    if tcp_open "$HOST" "$KAFKA_PORT"; then
      echo "tansu: running $HOST:$KAFKA_PORT pid=$pid storage=$storage log=$TANSU_LOG"
    else
      echo "tansu: running pid=$pid but $HOST:$KAFKA_PORT not accepting connections storage=$storage log=$TANSU_LOG"
      return 1
    fi
  elif find_tansu >/dev/null; then
    echo "tansu: stopped (log $TANSU_LOG)"
    return 1
  else
    echo "tansu: not installed"
    return 1
  fi
}

# ----------------------------------------------------------------------------
# commands

print_env() {
  printf 'export CDC_TEST_PG_URL=%s\n' "$PG_URL"
  printf 'export CDC_TEST_MYSQL_URL=%s\n' "$MYSQL_URL"
  printf 'export CDC_TEST_KAFKA_BROKERS=%s\n' "$KAFKA_BROKERS"
}

cmd_up() {
  # The real stdout is kept on fd 3 for the export lines; all else goes to stderr.
  exec 3>&1 1>&2
  cd /
  local started=$SECONDS
  ensure_state_dir
  take_lock
  # What building cdc itself needs (rdkafka builds librdkafka with OpenSSL and zlib).
  ensure_packages gcc g++ libc6-dev make perl pkg-config libssl-dev zlib1g-dev ca-certificates
  pg_up
  my_up
  tansu_up
  log "all services up ($((SECONDS - started))s)"
  print_env >&3
}

cmd_down() {
  local all=0
  case "${1:-}" in
    "") ;;
    --all) all=1 ;;
    *) die "unknown option for down: $1 (usage: $0 down [--all])" ;;
  esac
  exec 3>&1 1>&2
  cd /
  ensure_state_dir
  take_lock
  tansu_stop
  if ((all)); then
    pg_stop
    if [[ -x $MARIADBD ]] && my_process; then
      my_log_path
      my_stop
    else
      log "MariaDB is not running"
    fi
  else
    log "leaving PostgreSQL and MariaDB running (use 'down --all' to stop them too)"
  fi
}

# Stop tansu, delete its storage (every topic and record), start it empty again.
cmd_reset_broker() {
  exec 3>&1 1>&2
  cd /
  ensure_state_dir
  take_lock
  tansu_stop
  log "deleting the broker's storage $STATE_DIR/tansu.db"
  rm -f "$STATE_DIR/tansu.db" "$STATE_DIR/tansu.db-wal" "$STATE_DIR/tansu.db-shm"
  tansu_up
  print_env >&3
}

cmd_status() {
  cd /
  local rc=0
  pg_status || rc=3
  my_status || rc=3
  tansu_status || rc=3
  exit "$rc"
}

usage() {
  cat >&2 <<EOF
usage: $0 up | down [--all] | status | env | reset-broker
  up          install, configure, start and verify PostgreSQL, MariaDB and tansu;
              prints export lines on stdout: eval "\$($0 up)"
  down        stop tansu (add --all to also stop PostgreSQL and MariaDB)
  status      show whether each service runs, and its key settings
  env         print the export lines only
  reset-broker  stop tansu, delete its storage (all topics), start it again
  index-headers [DB [WAIT_S]]  create tansu's missing header index in DB (default its storage;
              done by up and reset-broker), waiting up to WAIT_S for the broker's schema
state directory: $STATE_DIR (CDC_SERVICES_DIR)
EOF
}

main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    status) cmd_status "$@" ;;
    reset-broker) cmd_reset_broker "$@" ;;
    index-headers) tansu_index_headers "${1:-$STATE_DIR/tansu.db}" "${2:-60}" ;;
    env) print_env ;;
    -h | --help | help)
      usage
      ;;
    *)
      usage
      exit 2
      ;;
  esac
}

main "$@"
