#!/usr/bin/env bash
# Chaos benchmark (issue 15, docs/chaos.md): for each race fixture, how many
# runs it takes to see the race fail
#   - natively (the program in a loop, capped at NATIVE_CAP, default 500),
#   - under plain recording (`cargo-rrtest record --no-verify`, capped at
#     RECORD_CAP, default 50),
#   - under the chaos scheduler (`record --chaos --seed S --no-verify`,
#     seeds S = 1000*r + 1, 1000*r + 2, ... for repeat r, capped at
#     CHAOS_CAP, default 50),
# and the median wall time of one run in each mode. Each search is repeated
# REPEATS times (default 3; different seeds for chaos) and the table shows
# the median runs-to-first-failure, ">CAP" when a search found none.
#
# Fixtures: fixtures/c/race_{counter,publish,file,timeout,order}.c (built
# with gcc -O1 like the trials build them) and the tests of fixtures/races
# (a debug build, run the way the harness runs one test:
# `<bin> --exact NAME --nocapture`).
#
# Results go to target/rrtest-bench/chaos-<UTC time>.json (and
# chaos-latest.json). A benchmark, not a test: it asserts nothing.
# Usage: [MODES=chaos] [REPEATS=N] scripts/bench-chaos.sh [FIXTURE-NAME-SUBSTRING]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
NATIVE_CAP=${NATIVE_CAP:-500}
RECORD_CAP=${RECORD_CAP:-50}
CHAOS_CAP=${CHAOS_CAP:-50}
REPEATS=${REPEATS:-3}
# The modes to run (a subset of "native record chaos"; the others show "-").
MODES=${MODES:-native record chaos}
only=${1:-}

out_dir="$root/target/rrtest-bench"
work="$root/target/rrtest-bench/chaos-work"
mkdir -p "$out_dir" "$work/bin" "$work/files"
cargo build --quiet -p cargo-rrtest --bin cargo-rrtest
# A copy: a rebuild while the benchmark runs must not change it.
cp "$root/target/debug/cargo-rrtest" "$work/cargo-rrtest.new"
mv -f "$work/cargo-rrtest.new" "$work/cargo-rrtest"
rr="$work/cargo-rrtest"

for f in counter publish file timeout order; do
  gcc -O1 -g -pthread -Wall -Wextra -fPIE -pie -o "$work/bin/race_$f" \
    "fixtures/c/race_$f.c"
done
cargo test --quiet --no-run --manifest-path fixtures/races/Cargo.toml \
  --target-dir "$work/races-target" 2>/dev/null
races_bin=$(cargo test --no-run --message-format json \
  --manifest-path fixtures/races/Cargo.toml --target-dir "$work/races-target" 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "races" \
            and "test" in m["target"]["kind"] and m.get("executable"):
        print(m["executable"])')

# name|the exit status of the race's failure|command (words)
fixtures=(
  "race_counter|1|$work/bin/race_counter"
  "race_publish|1|$work/bin/race_publish"
  "race_file|1|$work/bin/race_file $work/files"
  "race_timeout|1|$work/bin/race_timeout"
  "race_order|1|$work/bin/race_order"
  "races::lost_update|101|$races_bin --exact lost_update --nocapture"
  "races::relaxed_publication|101|$races_bin --exact relaxed_publication --nocapture"
  "races::check_then_create|101|$races_bin --exact check_then_create --nocapture"
  "races::recv_timeout|101|$races_bin --exact recv_timeout --nocapture"
  "races::start_order|101|$races_bin --exact start_order --nocapture"
)

now_ns() { date +%s%N; }

# search MODE CAP REPEAT FAIL_CODE CMD...: prints "RUNS MS_PER_RUN" (RUNS =
# 0: none failed within CAP). Only FAIL_CODE is the race's failure; any
# other status (a recorder error) stops the benchmark.
search() {
  local mode=$1 cap=$2 rep=$3 fail=$4
  shift 4
  local n=0 found=0 start end
  start=$(now_ns)
  while [ "$n" -lt "$cap" ]; do
    n=$((n + 1))
    local code=0
    case $mode in
      native) "$@" >/dev/null 2>"$work/stderr" || code=$? ;;
      record)
        rm -rf "$work/trace"
        "$rr" record --no-verify -o "$work/trace" -- "$@" >/dev/null 2>"$work/stderr" || code=$? ;;
      chaos)
        rm -rf "$work/trace"
        "$rr" record --no-verify --chaos --seed $((1000 * rep + n)) -o "$work/trace" \
          -- "$@" >/dev/null 2>"$work/stderr" || code=$? ;;
    esac
    if [ "$code" != 0 ] && [ "$code" != "$fail" ]; then
      echo "bench-chaos: $mode run $n of $*: exit $code, not the race's $fail:" >&2
      tail -3 "$work/stderr" >&2
      exit 1
    fi
    if [ "$code" = "$fail" ]; then
      found=$n
      break
    fi
  done
  end=$(now_ns)
  echo "$found $(((end - start) / n / 1000000))"
}

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : 0)}'; }

# The median of runs-to-first-failure, a search that found none counting
# as CAP + 1 (shown as ">CAP").
runs_median() {
  local cap=$1
  shift
  local m
  m=$(for r in "$@"; do if [ "$r" = 0 ]; then echo $((cap + 1)); else echo "$r"; fi; done | median)
  if [ "$m" -gt "$cap" ]; then echo ">$cap"; else echo "$m"; fi
}

stamp=$(date -u +%Y%m%dT%H%M%SZ)
json="$out_dir/chaos-$stamp.json"
printf '{\n  "caps": {"native": %d, "record": %d, "chaos": %d},\n  "repeats": %d,\n  "fixtures": [\n' \
  "$NATIVE_CAP" "$RECORD_CAP" "$CHAOS_CAP" "$REPEATS" >"$json"
printf '%-28s %10s %8s %10s %8s %10s %8s\n' fixture native ms/run record ms/run chaos ms/run
first=1
for entry in "${fixtures[@]}"; do
  name=${entry%%|*}
  rest=${entry#*|}
  fail=${rest%%|*}
  read -r -a cmd <<<"${rest#*|}"
  if [ -n "$only" ] && [[ $name != *"$only"* ]]; then
    continue
  fi
  declare -A runs=() ms=() raw=()
  for mode in native record chaos; do
    if [[ " $MODES " != *" $mode "* ]]; then
      runs[$mode]="-" ms[$mode]=0 raw[$mode]=""
      continue
    fi
    case $mode in native) cap=$NATIVE_CAP ;; record) cap=$RECORD_CAP ;; chaos) cap=$CHAOS_CAP ;; esac
    rs="" ts=""
    for rep in $(seq "$REPEATS"); do
      out=$(search "$mode" "$cap" "$rep" "$fail" "${cmd[@]}") || exit 1
      read -r r t <<<"$out"
      rs="$rs $r"
      ts="$ts $t"
    done
    # shellcheck disable=SC2086
    runs[$mode]=$(runs_median "$cap" $rs)
    ms[$mode]=$(echo "$ts" | median)
    raw[$mode]=$rs
  done
  printf '%-28s %10s %8s %10s %8s %10s %8s\n' "$name" \
    "${runs[native]}" "${ms[native]}" "${runs[record]}" "${ms[record]}" "${runs[chaos]}" "${ms[chaos]}"
  [ "$first" = 1 ] || printf ',\n' >>"$json"
  first=0
  printf '    {"name": "%s", "native": {"runs_to_failure": "%s", "ms_per_run": %s, "each": "%s"}, "record": {"runs_to_failure": "%s", "ms_per_run": %s, "each": "%s"}, "chaos": {"runs_to_failure": "%s", "ms_per_run": %s, "each": "%s"}}' \
    "$name" "${runs[native]}" "${ms[native]}" "${raw[native]# }" \
    "${runs[record]}" "${ms[record]}" "${raw[record]# }" \
    "${runs[chaos]}" "${ms[chaos]}" "${raw[chaos]# }" >>"$json"
  unset runs ms raw
done
printf '\n  ]\n}\n' >>"$json"
cp "$json" "$out_dir/chaos-latest.json"
echo "results: $json (each: runs to the first failure per repeat, 0 = none within the cap)"
