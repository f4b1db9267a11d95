#!/usr/bin/env bash
# Thread-heavy workloads benchmark (issue 19): what recording costs where
# threads wait for each other. The workloads are the tests of
# fixtures/threads (a one-slot Mutex/Condvar queue with ten producers and
# ten consumers, a rendezvous-channel stress and ping-pong, a hand-off by
# spinning on `try_recv`, a spin-then-park lock under contention, a scoped-thread join tree, an async executor with
# timers, eight stealers spinning on a pool one producer fills), each run the way the harness runs one test
# (`<test-binary> --exact tests::NAME`).
#
# Per workload, RUNS rounds (default 5), interleaved: native, then
# `cargo-rrtest record --no-verify --disposable`, as the harness records a
# test (the trace's files/ hard links to the binaries, nothing copied,
# hashed or fsynced: before 2026-12-06 the runs made self-contained traces,
# which copied and hashed the 8 MiB test binary each time, about 30 ms a
# run the harness does not spend on a passing test); medians and
# recorded/native, with the
# scheduler's counters of the first trace (`info --json`: stops per second,
# switches, slices that ended without progress, spins cut short, execution
# points, spin probes moved ahead of an ip replay's filter cannot patch,
# idle time) and the recording's microseconds per stop (its wall
# time over its stops) against the floor: the least a ptrace stop costs on
# this machine (scripts/ptrace-floor.c: wait, PTRACE_GETREGS and resume,
# tracer and tracee on one CPU, nothing else; run once per round, median),
# and against the hand-off floor: two threads handed the CPU in turn by
# ptrace stops, each stop with the reads and writes a held futex wait
# cannot do without (ptrace-floor.c handoff). Each workload also runs
# natively on one CPU (taskset), the least a recorder that runs one
# thread at a time could reach.
# Each first trace is then verified
# (`cargo-rrtest verify`), and the result printed. Then the whole suite:
# `cargo rrtest` vs `cargo nextest run` (both prebuilt, RUNS interleaved
# runs each), and recorded/nextest.
# Goals (issue 19): each workload recorded within 2x of native; the suite
# within 1.5x of nextest. A benchmark, not a test: it fails only when a run
# fails.
# Results: target/rrtest-bench/threads-<UTC time>.json and
# threads-latest.json.
#
# With --suite DIR: a real crate's suite instead (DIR holds its Cargo.toml,
# dependencies fetched or vendored: the runs pass cargo's flags through
# unchanged): built once, then RUNS interleaved runs of `cargo rrtest` and
# `cargo nextest run --no-fail-fast`, medians and recorded/nextest, the
# tests' outcomes under recording and the slowest recorded tests (from the
# report). A run whose tests fail is timed all the same (its exit status is
# printed). Results: target/rrtest-bench/threads-suite-<crate>-<UTC
# time>.json.
#
# Usage: scripts/bench-threads.sh [--runs N] [--only NAME | --suite DIR]
# Env:   RRTEST_BIN=path  use this cargo-rrtest instead of building
#        target/release/cargo-rrtest.
set -euo pipefail

RUNS=5
ONLY=""
SUITE_DIR=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    --suite) SUITE_DIR="$2"; shift 2 ;;
    -h|--help) sed -n '2,49p' "$0"; exit 0 ;;
    *) echo "bench-threads: unknown argument $1" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$TARGET/rrtest-bench"
WORK="$OUT/threads-work"
FIX_TARGET="$OUT/threads-target"
MANIFEST="$ROOT/fixtures/threads/Cargo.toml"
mkdir -p "$OUT" "$WORK"
command -v python3 >/dev/null || { echo "bench-threads: needs python3" >&2; exit 2; }
[[ -n "${EPOCHREALTIME:-}" ]] || { echo "bench-threads: needs bash >= 5 (EPOCHREALTIME)" >&2; exit 2; }

if [[ -n "${RRTEST_BIN:-}" ]]; then
  RR="$RRTEST_BIN"
else
  echo "bench-threads: building cargo-rrtest (release)" >&2
  cargo build --quiet --release -p cargo-rrtest --bin cargo-rrtest
  RR="$TARGET/release/cargo-rrtest"
fi
RR="$(cd "$(dirname "$RR")" && pwd)/$(basename "$RR")"
[[ -x "$RR" ]] || { echo "bench-threads: $RR is not executable" >&2; exit 2; }

if [[ -n "$SUITE_DIR" ]]; then
  SUITE_DIR="$(cd "$SUITE_DIR" && pwd)"
  SUITE_MANIFEST="$SUITE_DIR/Cargo.toml"
  [[ -f "$SUITE_MANIFEST" ]] || { echo "bench-threads: no Cargo.toml in $SUITE_DIR" >&2; exit 2; }
  cargo nextest --version >/dev/null 2>&1 || { echo "bench-threads: --suite needs cargo-nextest" >&2; exit 2; }
  CRATE="$(basename "$SUITE_DIR")"
  SAMPLES="$WORK/suite-$CRATE-samples.txt"
  REPORT="$WORK/suite-$CRATE-report.json"
  : > "$SAMPLES"
  echo "bench-threads: building the tests of $SUITE_DIR" >&2
  cargo test --quiet --no-run --manifest-path "$SUITE_MANIFEST" >&2
  echo "bench-threads: $RUNS runs each of cargo rrtest and cargo nextest run, interleaved" >&2
  for ((r = 0; r < RUNS; r++)); do
    for mode in rrtest nextest; do
      if [[ $mode == rrtest ]]; then
        cmd=("$RR" rrtest --manifest-path "$SUITE_MANIFEST" --cargo-quiet --color never
          --report "$REPORT.$r")
      else
        cmd=(cargo nextest run --manifest-path "$SUITE_MANIFEST" --cargo-quiet --color never
          --no-fail-fast)
      fi
      t0=${EPOCHREALTIME/[.,]/}
      set +e
      "${cmd[@]}" >"$WORK/suite-$CRATE-$mode-$r.out" 2>&1
      rc=$?
      set -e
      t1=${EPOCHREALTIME/[.,]/}
      echo "$mode $(((t1 - t0) * 1000)) $rc" >> "$SAMPLES"
      echo "bench-threads: run $r, $mode: $(((t1 - t0) / 1000)) ms, exit $rc" >&2
    done
  done
  STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
  RESULT="$OUT/threads-suite-$CRATE-$STAMP.json"
  python3 - "$SAMPLES" "$REPORT" "$RESULT" "$RUNS" "$SUITE_DIR" "$(nproc)" \
      "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, os, statistics, sys
samples, report, result, runs, suite_dir, cpus, load = sys.argv[1:]
times, codes = {}, {}
for line in open(samples):
    mode, ns, rc = line.split()
    times.setdefault(mode, []).append(int(ns))
    codes.setdefault(mode, []).append(int(rc))
med = {m: statistics.median(v) / 1e6 for m, v in times.items()}
out = {"suite": suite_dir, "runs": int(runs), "cpus": int(cpus), "load": load,
       "rrtest_ms": med["rrtest"], "nextest_ms": med["nextest"],
       "ratio_rrtest_nextest": med["rrtest"] / med["nextest"],
       "exit_codes": codes, "samples_ns": times, "runs_detail": []}
print(f"suite {suite_dir}: cargo rrtest {med['rrtest'] / 1000:.1f} s, cargo nextest run "
      f"{med['nextest'] / 1000:.1f} s (medians of {runs}): recorded/nextest "
      f"{out['ratio_rrtest_nextest']:.2f}x (goal <= 1.5x); exit codes {codes}")
for r in range(int(runs)):
    path = f"{report}.{r}"
    if not os.path.exists(path):
        continue
    rep = json.load(open(path))
    slow = sorted(rep.get("tests", []), key=lambda t: -(t.get("duration_ms") or 0))[:5]
    detail = {"summary": rep.get("summary"),
              "slowest": [[t["name"], t.get("duration_ms"), t.get("outcome")] for t in slow]}
    out["runs_detail"].append(detail)
    if r == 0:
        print(f"  recorded outcomes: {detail['summary']}")
        for name, ms, outcome in detail["slowest"]:
            print(f"  slowest recorded: {name} {ms} ms ({outcome})")
print(f"({cpus} CPUs, load {load})")
with open(result, "w") as f:
    json.dump(out, f, indent=2)
    f.write("\n")
PY
  echo "bench-threads: wrote $RESULT" >&2
  exit 0
fi

echo "bench-threads: building fixtures/threads tests" >&2
TEST_BIN="$(cargo test --quiet --no-run --lib --offline --manifest-path "$MANIFEST" \
    --target-dir "$FIX_TARGET" --message-format json |
  python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])
')"
[[ -x "$TEST_BIN" ]] || { echo "bench-threads: no test binary built" >&2; exit 2; }

WORKLOADS=(one_slot_ten_producers_ten_consumers one_slot_notify_all_herd rendezvous_channel_stress
  rendezvous_channel_ping_pong spin_handoff_try_recv spin_try_send_rendezvous
  lock_retaken_by_pollers unlock_then_yield spin_then_park_lock_contention scoped_join_tree async_executor_with_timers
  stealers_all_served)
if [[ -n "$ONLY" ]]; then
  WORKLOADS=("$ONLY")
fi

command -v gcc >/dev/null || { echo "bench-threads: needs gcc (scripts/ptrace-floor.c)" >&2; exit 2; }
FLOOR_BIN="$WORK/ptrace-floor"
gcc -O2 -Wall -o "$FLOOR_BIN" "$ROOT/scripts/ptrace-floor.c"

export RUST_BACKTRACE=0
SAMPLES="$WORK/samples.txt"
: > "$SAMPLES"
# timed NAME MODE CMD...: one run, "NAME MODE ns" appended to $SAMPLES.
timed() {
  local name="$1" mode="$2"; shift 2
  local t0 t1 rc
  t0=${EPOCHREALTIME/[.,]/}
  set +e
  "$@" >/dev/null 2>"$WORK/last-stderr"
  rc=$?
  set -e
  t1=${EPOCHREALTIME/[.,]/}
  if [[ $rc -ne 0 ]]; then
    echo "bench-threads: $name/$mode failed (exit $rc):" >&2
    tail -20 "$WORK/last-stderr" >&2
    exit 1
  fi
  echo "$name $mode $(((t1 - t0) * 1000))" >> "$SAMPLES"
}

echo "bench-threads: $RUNS rounds of ${#WORKLOADS[@]} workloads, native and recorded, interleaved" >&2
FLOORS="$WORK/floor.txt"
HANDOFFS="$WORK/handoff.txt"
: > "$FLOORS"
: > "$HANDOFFS"
# The CPU the native runs on one CPU take: the first this shell may use.
ONE_CPU="$(python3 -c 'import os; print(min(os.sched_getaffinity(0)))')"
for ((r = 0; r < RUNS; r++)); do
  "$FLOOR_BIN" 100000 >> "$FLOORS"
  "$FLOOR_BIN" 100000 handoff >> "$HANDOFFS"
  for w in "${WORKLOADS[@]}"; do
    rm -rf "$WORK/$w-$r"
    timed "$w" native "$TEST_BIN" --exact "tests::$w"
    timed "$w" native1 taskset -c "$ONE_CPU" "$TEST_BIN" --exact "tests::$w"
    timed "$w" record "$RR" record --no-verify --disposable -o "$WORK/$w-$r" -- "$TEST_BIN" --exact "tests::$w"
    if [[ $r -gt 0 ]]; then rm -rf "$WORK/$w-$r"; fi
  done
done
for w in "${WORKLOADS[@]}"; do
  "$RR" info --json "$WORK/$w-0" > "$WORK/$w-info.json"
  if "$RR" verify "$WORK/$w-0" >"$WORK/$w-verify.txt" 2>&1; then
    echo "verified" > "$WORK/$w-verified"
  else
    echo "FAILED" > "$WORK/$w-verified"
    tail -5 "$WORK/$w-verify.txt" >&2
  fi
done

SUITE=0
if [[ -z "$ONLY" ]] && cargo nextest --version >/dev/null 2>&1; then
  SUITE=1
  echo "bench-threads: the suite: cargo rrtest vs cargo nextest run, $RUNS runs each" >&2
  REPORT="$WORK/suite-report.json"
  cargo test --no-run --quiet --offline --manifest-path "$MANIFEST" --target-dir "$FIX_TARGET"
  for ((r = 0; r < RUNS; r++)); do
    timed suite rrtest "$RR" rrtest --manifest-path "$MANIFEST" --target-dir "$FIX_TARGET" \
      --cargo-quiet --color never --report "$REPORT"
    timed suite nextest cargo nextest run --manifest-path "$MANIFEST" --target-dir "$FIX_TARGET" \
      --cargo-quiet --color never --no-fail-fast
  done
  grep -q '"recording": true' "$REPORT" || { echo "bench-threads: cargo rrtest did not record" >&2; exit 1; }
else
  [[ -n "$ONLY" ]] || echo "bench-threads: cargo-nextest is not installed: no suite comparison" >&2
fi

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RESULT="$OUT/threads-$STAMP.json"
python3 - "$SAMPLES" "$WORK" "$RESULT" "$RUNS" "$SUITE" "$(uname -srm)" "$(nproc)" \
    "$(cut -d' ' -f1-3 /proc/loadavg)" "$FLOORS" "$HANDOFFS" "${WORKLOADS[@]}" <<'PY'
import json, statistics, sys
samples, work, result, runs, suite, kernel, cpus, load, floors, handoffs, *names = sys.argv[1:]
times = {}
for line in open(samples):
    name, mode, ns = line.split()
    times.setdefault(name, {}).setdefault(mode, []).append(int(ns))
# "N stops in S s: U us per stop"
floor_us = [float(line.split()[-4]) for line in open(floors) if line.strip()]
floor = statistics.median(floor_us)
handoff_us = [float(line.split()[-4]) for line in open(handoffs) if line.strip()]
handoff = statistics.median(handoff_us)
report = {"runs": int(runs), "kernel": kernel, "cpus": int(cpus), "load": load,
          "ptrace_floor_us_per_stop": floor, "ptrace_floor_samples_us": floor_us,
          "handoff_floor_us_per_stop": handoff, "handoff_floor_samples_us": handoff_us,
          "workloads": {}}
print(f"{'workload':<38} {'native':>9} {'1cpu/nat':>8} {'recorded':>9} {'rec/nat':>7} {'stops/s':>8} "
      f"{'us/stop':>7} {'/floor':>6} {'/hand':>5} "
      f"{'switches':>8} {'yields':>6} {'expired':>7} {'cut':>5} {'points s/r/l/a':>15} "
      f"{'ahead':>5} {'idle%':>5} verify")
for name in names:
    info = json.load(open(f"{work}/{name}-info.json"))
    st = info.get("stats", {})
    sch = st.get("schedule", {})
    med = {m: statistics.median(v) / 1e6 for m, v in times[name].items()}
    wall = sch.get("wall_ms", 0)
    w = {
        "native_ms": med["native"],
        "native_one_cpu_ms": med["native1"],
        "ratio_one_cpu_native": med["native1"] / med["native"],
        "recorded_ms": med["record"],
        "ratio_recorded_native": med["record"] / med["native"],
        "traced_syscalls": st.get("traced_syscalls", 0),
        "buffered_syscalls": st.get("buffered_syscalls", 0),
        "desched_events": st.get("desched_events", 0),
        "schedule": sch,
        "stops_per_s": sch.get("stops", 0) * 1000 / wall if wall else None,
        "us_per_stop": wall * 1000 / sch["stops"] if sch.get("stops") else None,
        "idle_percent": 100 * sch.get("idle_ms", 0) / wall if wall else None,
        "verified": open(f"{work}/{name}-verified").read().strip(),
        "samples_ns": times[name],
    }
    report["workloads"][name] = w
    pts = f"{sch.get('points_spin', 0)}/{sch.get('points_return', 0)}/{sch.get('points_loop_exit', 0)}/{sch.get('points_anywhere', 0)}"
    print(f"{name:<38} {w['native_ms']:>7.1f}ms {w['ratio_one_cpu_native']:>7.2f}x "
          f"{w['recorded_ms']:>7.1f}ms "
          f"{w['ratio_recorded_native']:>6.2f}x {w['stops_per_s'] or 0:>8.0f} "
          f"{w['us_per_stop'] or 0:>7.1f} {(w['us_per_stop'] or 0) / floor:>5.1f}x "
          f"{(w['us_per_stop'] or 0) / handoff:>4.1f}x "
          f"{sch.get('switches', 0):>8} {sch.get('yields', 0):>6} "
          f"{sch.get('slices_expired', 0):>7} {sch.get('spins_cut', 0):>5} {pts:>15} "
          f"{sch.get('probes_ahead', 0):>5} {w['idle_percent'] or 0:>5.0f} {w['verified']}")
if suite == "1":
    med = {m: statistics.median(v) / 1e6 for m, v in times["suite"].items()}
    report["suite"] = {
        "rrtest_ms": med["rrtest"],
        "nextest_ms": med["nextest"],
        "ratio_rrtest_nextest": med["rrtest"] / med["nextest"],
        "samples_ns": times["suite"],
    }
    s = report["suite"]
    print(f"suite (fixtures/threads): cargo rrtest {s['rrtest_ms']:.0f}ms, "
          f"cargo nextest run {s['nextest_ms']:.0f}ms: recorded/nextest "
          f"{s['ratio_rrtest_nextest']:.2f}x (goal <= 1.5x)")
print(f"floor: a bare ptrace stop (wait, PTRACE_GETREGS, resume; one CPU) takes "
      f"{floor:.1f} us here (median of {len(floor_us)}); us/stop is a recording's wall "
      f"time over its stops")
print(f"hand: a hand-off between two threads by ptrace stops, with the reads and "
      f"writes a held futex wait needs (scripts/ptrace-floor.c handoff), takes "
      f"{handoff:.1f} us a stop (median of {len(handoff_us)}); 1cpu/nat is the test "
      f"run natively on one CPU (taskset) over its native run: the least a recorder "
      f"that runs one thread at a time could reach")
print(f"({cpus} CPUs, load {load})")
with open(result, "w") as f:
    json.dump(report, f, indent=2)
    f.write("\n")
PY
cp "$RESULT" "$OUT/threads-latest.json"
echo "bench-threads: wrote $RESULT" >&2
