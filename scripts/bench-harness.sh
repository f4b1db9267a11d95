#!/usr/bin/env bash
# Wall time of `cargo rrtest --no-record` vs `cargo nextest run` on the demo
# workspace's passing tests (the same filter for both), both prebuilt.
#
# Usage: scripts/bench-harness.sh [RUNS]   (default 7; env CARGO_RRTEST=path
# to use a given cargo-rrtest binary, else target/release/cargo-rrtest is built)
#
# Prints the median of RUNS runs of each and the ratio rrtest/nextest
# (target: <= 1.2).
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-7}"
manifest="fixtures/demo/Cargo.toml"
target_dir="target/bench-harness"
# Passing tests only: leave out the failing, flaky and timing-out ones.
skips=(--skip hangs --skip checksum --skip worker_panics --skip flaky)

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "cargo-nextest is not installed (cargo install cargo-nextest --locked)" >&2
    exit 2
fi
if [[ -z "${CARGO_RRTEST:-}" ]]; then
    cargo build --release --quiet -p cargo-rrtest
    CARGO_RRTEST="target/release/cargo-rrtest"
fi

echo "== building the demo's tests once"
cargo test --no-run --quiet --manifest-path "$manifest" --target-dir "$target_dir"

rrtest() {
    "$CARGO_RRTEST" rrtest --no-record --manifest-path "$manifest" --target-dir "$target_dir" \
        --cargo-quiet --color never --report "$target_dir/bench-report.json" "${skips[@]}"
}
nextest() {
    cargo nextest run --manifest-path "$manifest" --target-dir "$target_dir" \
        --cargo-quiet --color never --no-fail-fast -- "${skips[@]}"
}

# Sanity: both pass and agree on how many tests ran.
rr_out="$(rrtest 2>&1)" || { echo "$rr_out"; echo "cargo rrtest failed" >&2; exit 1; }
nx_out="$(nextest 2>&1)" || { echo "$nx_out"; echo "cargo nextest failed" >&2; exit 1; }
echo "rrtest:  $(grep -m1 'Summary' <<<"$rr_out")"
echo "nextest: $(grep -m1 'Summary' <<<"$nx_out")"

time_ms() {
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null 2>&1
    end=$(date +%s%N)
    echo $(((end - start) / 1000000))
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

rr_times=()
nx_times=()
for ((i = 0; i < runs; i++)); do
    # Interleave so drift in machine load hits both alike.
    rr_times+=("$(time_ms rrtest)")
    nx_times+=("$(time_ms nextest)")
done
rr_med=$(printf '%s\n' "${rr_times[@]}" | median)
nx_med=$(printf '%s\n' "${nx_times[@]}" | median)
echo "cargo rrtest --no-record: ${rr_times[*]} ms -> median ${rr_med} ms"
echo "cargo nextest run:        ${nx_times[*]} ms -> median ${nx_med} ms"
awk -v a="$rr_med" -v b="$nx_med" 'BEGIN { r = a / b; printf "ratio rrtest/nextest: %.2fx (target <= 1.20x) %s\n", r, (r <= 1.2 ? "OK" : "OVER") }'
