#!/usr/bin/env bash
# The demo: PostgreSQL to Kafka. Brings up the services, builds cdc, creates a small shop database,
# runs the pipeline of configs/postgres-kafka.yaml, keeps writing orders, and prints the change
# events as they arrive in Kafka. Ctrl-C stops everything (cdc drains, stores its position in
# Kafka and exits 0).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi

echo "demo: starting services" >&2
eval "$(scripts/services.sh up)"

echo "demo: building cdc (release)" >&2
cargo build --release --locked --bin cdc --example kafka_tail >&2

export PGPASSWORD=cdc
psql_demo() { psql -q -h 127.0.0.1 -U cdc -d cdc_demo -v ON_ERROR_STOP=1 "$@"; }
if ! psql -h 127.0.0.1 -U cdc -d cdc -tAc "SELECT 1 FROM pg_database WHERE datname = 'cdc_demo'" | grep -q 1; then
  psql -q -h 127.0.0.1 -U cdc -d cdc -c "CREATE DATABASE cdc_demo"
fi
psql_demo <<'SQL'
CREATE TABLE IF NOT EXISTS customers (id serial PRIMARY KEY, name text NOT NULL, email text);
CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, customer_id int REFERENCES customers,
  amount numeric(10,2) NOT NULL, status text NOT NULL DEFAULT 'new', created_at timestamptz DEFAULT now());
INSERT INTO customers (name, email) SELECT 'customer ' || g, 'c' || g || '@example.com'
  FROM generate_series(1, 3) g WHERE NOT EXISTS (SELECT 1 FROM customers);
SQL

mkdir -p data
echo "demo: starting cdc (log: data/demo.log); the endpoint is http://127.0.0.1:9187/metrics" >&2
# In a session of its own, so that Ctrl-C reaches only this script, which then stops cdc once.
(CDC_SOURCE__PASSWORD=cdc exec setsid ./target/release/cdc run -c configs/postgres-kafka.yaml 2>data/demo.log) &
cdc_pid=$!

( # a writer: a new order every second, and every third one shipped
  i=0
  while sleep 1; do
    i=$((i + 1))
    psql_demo -c "INSERT INTO orders (customer_id, amount) VALUES (1 + $i % 3, round((random() * 100)::numeric, 2))" || true
    if ((i % 3 == 0)); then
      psql_demo -c "UPDATE orders SET status = 'shipped' WHERE id = (SELECT min(id) FROM orders WHERE status = 'new')" || true
    fi
  done
) &
writer_pid=$!

cleanup() {
  trap - EXIT INT TERM
  kill "$writer_pid" 2>/dev/null || true
  kill -TERM "$cdc_pid" 2>/dev/null || true
  wait "$cdc_pid" 2>/dev/null || true
  echo "demo: stopped (cdc's position is in Kafka; run the demo again to resume)" >&2
  echo "demo: its replication slot 'demo' keeps WAL until it resumes; to remove it:" >&2
  echo "demo:   CDC_SOURCE__PASSWORD=cdc ./target/release/cdc slot drop -c configs/postgres-kafka.yaml --yes" >&2
}
trap cleanup EXIT INT TERM

echo "demo: change events as they arrive in Kafka (Ctrl-C to stop):" >&2
./target/release/examples/kafka_tail "$CDC_TEST_KAFKA_BROKERS" demo.public.orders demo.public.customers
