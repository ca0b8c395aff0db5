#!/usr/bin/env bash
# Run every test of the workspace against real services: sets up PostgreSQL, MariaDB and the
# Kafka-protocol broker first (scripts/services.sh up installs whatever is missing), then runs
# `cargo test`. Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p source-postgres`).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi

echo "test: starting services" >&2
eval "$(scripts/services.sh up)"
export CDC_TEST_PG_URL CDC_TEST_MYSQL_URL CDC_TEST_KAFKA_BROKERS

echo "test: setting up the Debezium compatibility harness (Java 17, Debezium's jars)" >&2
scripts/compat.sh setup >/dev/null

echo "test: cargo test (services: $CDC_TEST_PG_URL, $CDC_TEST_MYSQL_URL, $CDC_TEST_KAFKA_BROKERS)" >&2
if [ "$#" -gt 0 ]; then
  exec cargo test --locked "$@"
fi
exec cargo test --locked --workspace --all-targets
