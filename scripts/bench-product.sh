#!/usr/bin/env bash
# Wall time of `cargo rrtest` (recording every test, keeping none since all
# pass) vs `cargo rrtest --no-record` vs `cargo nextest run` vs `cargo test`,
# all prebuilt, on:
#   - the demo workspace's passing tests (fixtures/demo);
#   - the test suites of real crates from crates.io whose sources are in
#     cargo's registry cache and that build offline (strsim: 96 tests, heck:
#     111 tests), copied to target/bench-crates/.
#
# Usage: scripts/bench-product.sh [RUNS]   (default 5; env CARGO_RRTEST=path
# to use a given cargo-rrtest binary, else target/release/cargo-rrtest is
# built; env BASELINE=path to time another cargo-rrtest's recording too,
# interleaved with the rest, e.g. a build of the previous commit; env CRATES="strsim-0.11.1 ..." to choose the crates, "" for none;
# RUST_BACKTRACE is 0 unless set: with 1, every panicking test symbolizes a
# backtrace, thousands of syscalls that are traced until the syscall buffer
# exists)
#
# Prints, per suite, the median of RUNS interleaved runs of each tool and the
# ratios to nextest (goal for recording: <= 1.3x nextest, at most 1.5x).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

runs="${1:-5}"
crates="${CRATES-strsim-0.11.1 heck-0.5.0}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-0}"
echo "RUST_BACKTRACE=$RUST_BACKTRACE, $(nproc) CPUs, load: $(cut -d' ' -f1-3 /proc/loadavg)"

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "cargo-nextest is not installed (cargo install cargo-nextest --locked)" >&2
    exit 2
fi
if [[ -z "${CARGO_RRTEST:-}" ]]; then
    cargo build --release --quiet -p cargo-rrtest
    CARGO_RRTEST="$root/target/release/cargo-rrtest"
fi

time_ms() {
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null 2>&1 || true
    end=$(date +%s%N)
    echo $(((end - start) / 1000000))
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# bench NAME MANIFEST TARGET_DIR [LIBTEST FILTER ARGS...]
bench() {
    local name="$1" manifest="$2" target="$3"
    shift 3
    local filters=("$@")
    local report="$target/bench-product-report.json"
    rec() {
        "$CARGO_RRTEST" rrtest --manifest-path "$manifest" --target-dir "$target" \
            --cargo-quiet --color never --report "$report" "${filters[@]}"
    }
    base() {
        "$BASELINE" rrtest --manifest-path "$manifest" --target-dir "$target" \
            --cargo-quiet --color never --report "$report" "${filters[@]}"
    }
    norec() {
        "$CARGO_RRTEST" rrtest --no-record --manifest-path "$manifest" --target-dir "$target" \
            --cargo-quiet --color never --report "$report" "${filters[@]}"
    }
    nextest() {
        cargo nextest run --manifest-path "$manifest" --target-dir "$target" \
            --cargo-quiet --color never --no-fail-fast -- "${filters[@]}"
    }
    ctest() {
        cargo test --quiet --manifest-path "$manifest" --target-dir "$target" -- "${filters[@]}"
    }
    echo "== $name: building its tests"
    cargo test --no-run --quiet --manifest-path "$manifest" --target-dir "$target"
    local out
    out="$(rec 2>&1)" || { echo "$out"; echo "cargo rrtest failed on $name" >&2; return 1; }
    echo "rrtest:  $(grep -m1 'Summary' <<<"$out")"
    grep -q '"recording": true' "$report" || { echo "not recording on $name" >&2; return 1; }
    out="$(nextest 2>&1)" || { echo "$out"; echo "cargo nextest failed on $name" >&2; return 1; }
    echo "nextest: $(grep -m1 'Summary' <<<"$out")"

    local t_rec=() t_norec=() t_nx=() t_ct=() t_base=()
    for ((i = 0; i < runs; i++)); do
        t_rec+=("$(time_ms rec)")
        [[ -n "${BASELINE:-}" ]] && t_base+=("$(time_ms base)")
        t_norec+=("$(time_ms norec)")
        t_nx+=("$(time_ms nextest)")
        t_ct+=("$(time_ms ctest)")
    done
    local m_rec m_norec m_nx m_ct
    m_rec=$(printf '%s\n' "${t_rec[@]}" | median)
    m_norec=$(printf '%s\n' "${t_norec[@]}" | median)
    m_nx=$(printf '%s\n' "${t_nx[@]}" | median)
    m_ct=$(printf '%s\n' "${t_ct[@]}" | median)
    echo "cargo rrtest (recording):  ${t_rec[*]} ms -> median ${m_rec} ms"
    if [[ -n "${BASELINE:-}" ]]; then
        local m_base
        m_base=$(printf '%s\n' "${t_base[@]}" | median)
        echo "baseline recording:        ${t_base[*]} ms -> median ${m_base} ms"
        awk -v r="$m_rec" -v b="$m_base" -v x="$m_nx" -v name="$name" 'BEGIN {
            printf "%s: baseline recording/nextest %.2fx; recording/baseline %.2fx\n", name, b / x, r / b }'
    fi
    echo "cargo rrtest --no-record:  ${t_norec[*]} ms -> median ${m_norec} ms"
    echo "cargo nextest run:         ${t_nx[*]} ms -> median ${m_nx} ms"
    echo "cargo test:                ${t_ct[*]} ms -> median ${m_ct} ms"
    awk -v r="$m_rec" -v n="$m_norec" -v x="$m_nx" -v c="$m_ct" -v name="$name" 'BEGIN {
        printf "%s: recording/nextest %.2fx (goal <= 1.30x, limit 1.50x) %s; no-record/nextest %.2fx; recording/cargo-test %.2fx; nextest/cargo-test %.2fx\n",
            name, r / x, (r / x <= 1.3 ? "OK" : (r / x <= 1.5 ? "WITHIN LIMIT" : "OVER")), n / x, r / c, x / c }'
    echo
}

bench demo fixtures/demo/Cargo.toml "$root/target/bench-product/demo" \
    --skip hangs --skip checksum --skip worker_panics --skip flaky

registry="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/ 2>/dev/null | head -1)"
for crate in $crates; do
    src="$registry$crate"
    if [[ ! -f "$src/Cargo.toml" ]]; then
        echo "== $crate: not in the registry cache ($src), skipped"
        continue
    fi
    dest="$root/target/bench-crates/$crate"
    rm -rf "$dest"
    mkdir -p "$dest"
    cp -r "$src/." "$dest/"
    # Its own workspace, so it does not join ours.
    grep -q '^\[workspace\]' "$dest/Cargo.toml" || printf '\n[workspace]\n' >>"$dest/Cargo.toml"
    CARGO_NET_OFFLINE=true bench "$crate" "$dest/Cargo.toml" "$root/target/bench-product/$crate"
done
