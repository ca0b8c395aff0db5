#!/usr/bin/env bash
# The demo: bring up the services, build cdc, and run a pipeline whose change events scroll by.
# Stop it with Ctrl-C (it drains, stores its position and exits 0).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi

echo "demo: starting services" >&2
eval "$(scripts/services.sh up)"

echo "demo: building cdc (release)" >&2
cargo build --release --locked --bin cdc >&2

echo "demo: running configs/generator-stdout.yaml: synthetic orders and customers, 5 changes a second" >&2
exec ./target/release/cdc run -c configs/generator-stdout.yaml
