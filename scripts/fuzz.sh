#!/usr/bin/env bash
# Fuzz the decoders with cargo-fuzz (libFuzzer) on the stable toolchain (RUSTC_BOOTSTRAP=1).
# Usage: scripts/fuzz.sh [target|all] [seconds per target]   (default: all, 60)
# Targets: pgoutput, binlog, jsonb, config. Needs `cargo install cargo-fuzz`.
# Crashes land in fuzz/artifacts/<target>/; copy each into fuzz/corpus/<target>/ once fixed.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
target="${1:-all}"
seconds="${2:-60}"
if [ "$target" = all ]; then
    targets=(pgoutput binlog jsonb config)
else
    targets=("$target")
fi
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
    echo "== fuzzing $t for ${seconds}s"
    # A scratch copy of the corpus receives what the fuzzer finds; the committed corpus stays small.
    work="$(mktemp -d)"
    cp corpus/"$t"/* "$work"/
    cargo fuzz run -O --debug-assertions "$t" "$work" -- \
        -max_total_time="$seconds" -jobs=1 -rss_limit_mb=512 -malloc_limit_mb=256 -timeout=10
    rm -rf "$work"
done
