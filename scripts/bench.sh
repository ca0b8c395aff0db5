#!/usr/bin/env bash
# The end-to-end benchmark suite of cdc (issue 8): backlog drains, steady-state latency,
# snapshots and resources, each beside its ceiling, for PostgreSQL and MariaDB into the file sink
# and the local Kafka-protocol broker.
#
# Usage:
#   scripts/bench.sh                 # the whole suite (about 9 minutes on 2 cores)
#   scripts/bench.sh pg-insert       # one part; several parts or groups may be named:
#       pg-insert pg-update pg-wide pg-latency pg-snapshot pg-bigtxn
#       mysql-insert mysql-update mysql-wide mysql-latency mysql-snapshot mysql-bigtxn
#       groups: all pg mysql drain latency snapshot bigtxn
#
# It starts the services (scripts/services.sh up), builds the release `cdc` binary and the suite
# (`cargo bench --bench suite`), waits for other cargo builds or tests to finish (they would
# distort every figure), runs the parts, prints a table and writes the results as JSON to
# target/bench/<UTC time>-<git sha>.json and target/bench/latest.json.
#
# Knobs (environment): CDC_BENCH_RUNS (3 runs per figure; medians are reported),
# CDC_BENCH_LATENCY_SECS (20 s per latency run, 3 runs), CDC_BENCH_RATE (2000 tx/s),
# CDC_BENCH_TXNS (2000), CDC_BENCH_SNAPSHOT_ROWS (1000000), CDC_BENCH_BIG_ROWS (2000000), CDC_BENCH_SNAPSHOT_KAFKA (1),
# CDC_BENCH_PURGE_BINLOGS (1), CDC_BENCH_KEEP (0). A quick smoke run:
#   CDC_BENCH_RUNS=1 CDC_BENCH_TXNS=200 CDC_BENCH_WIDE_TXNS=200 CDC_BENCH_SNAPSHOT_ROWS=100000 \
#     CDC_BENCH_LATENCY_SECS=3 CDC_BENCH_LATENCY_RUNS=1 scripts/bench.sh
set -Eeuo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/services.sh up)"
export CDC_TEST_PG_URL CDC_TEST_MYSQL_URL CDC_TEST_KAFKA_BROKERS

for tool in pg_recvlogical pgbench psql mariadb mariadb-binlog; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (postgresql-client, mariadb-client)" >&2; exit 1; }
done

# Build first (and say so), then run: the suite itself waits while other builds run.
cargo bench --bench suite --no-run
exec cargo bench --bench suite -- "$@"
