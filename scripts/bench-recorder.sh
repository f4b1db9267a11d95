#!/usr/bin/env bash
# Recording overhead benchmark (DESIGN.md §10): native vs recorded with the
# syscall buffer vs recorded without it (--no-syscallbuf) vs replayed, wall
# time, on
#   - syscall_loop: fixtures/c/syscall_loop.c, N write(2)+pread64(2) pairs
#     (N = 20000 by default), the syscall-heavy worst case: the cheapest
#     syscalls there are (writes to /dev/null, 4-byte reads of a cached file);
#   - file_loop: fixtures/c/file_loop.c, N 64-byte write(2)+pread64(2) pairs
#     on a real (temporary) file;
#   - clock_loop: fixtures/c/clock_loop.c, 2N clock_gettime calls (the vDSO
#     is hidden while recording, so each is a syscall);
#   - signal_storm: fixtures/c/signal_storm.c, 10000 SIGUSR1 and 2000
#     SIGRTMIN sent by another thread while the target loops on write(2);
#   - print_loop: fixtures/c/print_loop.c, N/4 rounds of four writes to the
#     program's output (stdout, stderr, a dup of stdout, a writev), with
#     stdout and stderr in files (output sent to /dev/null is not program
#     output, and is not buffered as such);
#   - rdtsc_loop: fixtures/c/rdtsc_loop.c, N rdtsc from one site (patched
#     under the buffer: a buffered clock read each; every one traps without
#     it) and N/1000 rdtscp (always trapped);
#   - trivial_test: a trivial #[test] of fixtures/programs run the way the
#     harness runs one test (`<bin> --exact tests::trivial --nocapture`),
#     about 150 syscalls: the per-test start-up cost that dominates suites;
#   - desched: fixtures/c/pipe_pingpong.c, 1000 rounds over two pipes with
#     some computing before each blocking read, recorded with desched
#     events and with `--no-desched-events` (blocked reads found by looking
#     and polling only).
# Each is run RUNS times (default 7) per mode and the median is reported,
# with the ratios buffered/native and unbuffered/buffered, the share of
# syscalls buffered, and the cost per stop of the unbuffered recording,
# (unbuffered - native) / (its stats.traced_syscalls + stats.rdtsc, the
# trapped rdtsc).
# Then syscall_loop and file_loop run 10N rounds natively and recorded with
# the buffer, interleaved: their ratio, and the marginal ratio
# (recorded(10N) - recorded(N)) / (native(10N) - native(N)), which is the
# cost of the loop's syscalls alone, without the fixed cost of starting a
# recording (the recorder, the loader's traced syscalls, the trace files).
# Results go to target/rrtest-bench/recorder-<UTC time>.json (and
# recorder-latest.json). A benchmark, not a test: it asserts nothing about
# speed.
#
# Usage: scripts/bench-recorder.sh [--runs N] [--loop-n N]
# Env:   RRTEST_BIN=path  use this cargo-rrtest instead of building
#        target/release/cargo-rrtest.
set -euo pipefail

RUNS=7
LOOP_N=20000
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --loop-n) LOOP_N="$2"; shift 2 ;;
    -h|--help) sed -n '2,44p' "$0"; exit 0 ;;
    *) echo "bench-recorder: unknown argument $1" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$TARGET/rrtest-bench"
WORK="$OUT/work"
mkdir -p "$OUT" "$WORK"
command -v python3 >/dev/null || { echo "bench-recorder: needs python3 (statistics, JSON)" >&2; exit 2; }
command -v gcc >/dev/null || { echo "bench-recorder: needs gcc (the C fixture)" >&2; exit 2; }

# --- what we measure with ----------------------------------------------------
if [[ -n "${RRTEST_BIN:-}" ]]; then
  RR="$RRTEST_BIN"
else
  echo "bench-recorder: building cargo-rrtest (release)" >&2
  cargo build --quiet --release -p cargo-rrtest --bin cargo-rrtest
  RR="$TARGET/release/cargo-rrtest"
fi
[[ -x "$RR" ]] || { echo "bench-recorder: $RR is not executable" >&2; exit 2; }

# The C workloads, built into $OUT under their own names.
for fixture in syscall_loop file_loop clock_loop signal_storm print_loop pipe_pingpong rdtsc_loop; do
  gcc -O1 -pthread -o "$OUT/$fixture" "fixtures/c/$fixture.c"
done
LOOP_BIN="$OUT/syscall_loop"
FILE_BIN="$OUT/file_loop"
CLOCK_BIN="$OUT/clock_loop"
STORM_BIN="$OUT/signal_storm"
PRINT_BIN="$OUT/print_loop"
PING_BIN="$OUT/pipe_pingpong"
RDTSC_BIN="$OUT/rdtsc_loop"

echo "bench-recorder: building fixtures/programs tests" >&2
TEST_BIN="$(cargo test --quiet --no-run --lib --locked --offline \
    --manifest-path fixtures/programs/Cargo.toml \
    --target-dir "$OUT/programs-target" --message-format json |
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
[[ -x "$TEST_BIN" ]] || { echo "bench-recorder: no test binary built" >&2; exit 2; }

export RUST_BACKTRACE=0
# file_loop makes (and at once removes) its file in the working directory.
cd "$WORK"

# Wall clock in µs without forking (bash >= 5's EPOCHREALTIME), so the
# measurement adds no process start-up to short native runs.
[[ -n "${EPOCHREALTIME:-}" ]] || { echo "bench-recorder: needs bash >= 5 (EPOCHREALTIME)" >&2; exit 2; }

# time_runs NAME MODE CMD...: runs CMD $RUNS times (stdout to $STDOUT_TO,
# stderr to a file), appends "NAME MODE ns" lines to $SAMPLES. In CMD, @I@
# is replaced by the run index.
SAMPLES="$WORK/samples.txt"
: > "$SAMPLES"
STDOUT_TO=/dev/null
time_runs() {
  local name="$1" mode="$2"; shift 2
  local i t0 t1 rc args
  for ((i = 0; i < RUNS; i++)); do
    args=("${@//@I@/$i}")
    t0=${EPOCHREALTIME/[.,]/}
    set +e
    "${args[@]}" >"$STDOUT_TO" 2>"$WORK/last-stderr"
    rc=$?
    set -e
    t1=${EPOCHREALTIME/[.,]/}
    if [[ $rc -ne 0 ]]; then
      echo "bench-recorder: $name/$mode run $i failed (exit $rc):" >&2
      tail -20 "$WORK/last-stderr" >&2
      exit 1
    fi
    echo "$name $mode $(((t1 - t0) * 1000))" >> "$SAMPLES"
  done
}

# bench NAME CMD...: native, recorded, replayed; then the trace's stats.
declare -a NAMES=()
bench() {
  local name="$1"; shift
  NAMES+=("$name")
  rm -rf "$WORK/$name"
  mkdir -p "$WORK/$name"
  echo "bench-recorder: $name: $RUNS runs each: native, buffered, unbuffered, replayed" >&2
  time_runs "$name" native "$@"
  # Recording alone: verification is the replay measured next.
  time_runs "$name" record "$RR" record --no-verify -o "$WORK/$name/trace-@I@" -- "$@"
  time_runs "$name" record_nobuf "$RR" record --no-verify --no-syscallbuf \
    -o "$WORK/$name/plain-@I@" -- "$@"
  time_runs "$name" replay "$RR" replay "$WORK/$name/trace-0"
  "$RR" info --json "$WORK/$name/trace-0" > "$WORK/$name/info.json"
  "$RR" info --json "$WORK/$name/plain-0" > "$WORK/$name/info-plain.json"
  rm -rf "$WORK/$name"/trace-[1-9]* "$WORK/$name"/plain-[1-9]*
}

bench syscall_loop "$LOOP_BIN" "$LOOP_N"
bench file_loop "$FILE_BIN" "$LOOP_N"
bench clock_loop "$CLOCK_BIN" "$((2 * LOOP_N))"
bench signal_storm "$STORM_BIN"
STDOUT_TO="$WORK/print_loop-stdout"
bench print_loop "$PRINT_BIN" loop "$((LOOP_N / 4))"
STDOUT_TO=/dev/null
bench rdtsc_loop "$RDTSC_BIN" "$LOOP_N"
bench trivial_test "$TEST_BIN" --exact tests::trivial --nocapture

echo "bench-recorder: desched: $RUNS runs each: native, desched events, polled" >&2
PING=("$PING_BIN" 1000 100000)
time_runs desched native "${PING[@]}"
time_runs desched events "$RR" record --no-verify -o "$WORK/desched/events-@I@" -- "${PING[@]}"
time_runs desched polled "$RR" record --no-verify --no-desched-events \
  -o "$WORK/desched/polled-@I@" -- "${PING[@]}"
"$RR" info --json "$WORK/desched/events-0" > "$WORK/desched-info.json"
rm -rf "$WORK/desched"

LONG_N=$((10 * LOOP_N))
echo "bench-recorder: long loops ($LONG_N rounds): $RUNS runs each, interleaved: native, buffered" >&2
RUNS_WANTED=$RUNS
RUNS=1
for ((r = 0; r < RUNS_WANTED; r++)); do
  for name in syscall_loop file_loop; do
    time_runs "${name}_long" native "$OUT/$name" "$LONG_N"
    time_runs "${name}_long" record "$RR" record --no-verify -o "$WORK/long-$name" -- \
      "$OUT/$name" "$LONG_N"
    rm -rf "$WORK/long-$name"
  done
done
RUNS=$RUNS_WANTED

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RESULT="$OUT/recorder-$STAMP.json"
python3 - "$SAMPLES" "$WORK" "$RESULT" "$RUNS" "$LOOP_N" "$(uname -srm)" "$("$RR" --version 2>/dev/null || echo unknown)" "${NAMES[@]}" <<'PY'
import json, statistics, sys
samples, work, result, runs, loop_n, kernel, version, *names = sys.argv[1:]
times = {}
for line in open(samples):
    name, mode, ns = line.split()
    times.setdefault(name, {}).setdefault(mode, []).append(int(ns))
report = {"runs": int(runs), "kernel": kernel, "cargo_rrtest": version,
          "loop_n": int(loop_n), "workloads": {}}
print(f"{'workload':<14} {'native':>10} {'buffered':>10} {'unbuf.':>10} {'replayed':>10} "
      f"{'buf/nat':>8} {'unbuf/buf':>9} {'buffered%':>9} {'us/stop':>9}")
for name in names:
    info = json.load(open(f"{work}/{name}/info.json"))
    plain = json.load(open(f"{work}/{name}/info-plain.json"))
    stats = info.get("stats", {})
    traced = stats.get("traced_syscalls", 0)
    buffered = stats.get("buffered_syscalls", 0)
    plain_traced = plain.get("stats", {}).get("traced_syscalls", 0)
    # Each trapped rdtsc stops like a traced syscall (rdtsc_loop has few
    # syscalls and many traps).
    plain_stops = plain_traced + plain.get("stats", {}).get("rdtsc", 0)
    med = {m: statistics.median(v) for m, v in times[name].items()}
    per = (med["record_nobuf"] - med["native"]) / plain_stops / 1000 if plain_stops else None
    share = 100.0 * buffered / (buffered + traced) if buffered + traced else 0.0
    w = {
        "native_ms": med["native"] / 1e6,
        "recorded_ms": med["record"] / 1e6,
        "recorded_unbuffered_ms": med["record_nobuf"] / 1e6,
        "replayed_ms": med["replay"] / 1e6,
        "ratio_recorded_native": med["record"] / med["native"],
        "ratio_unbuffered_buffered": med["record_nobuf"] / med["record"],
        "ratio_replayed_recorded": med["replay"] / med["record"],
        "traced_syscalls": traced,
        "buffered_syscalls": buffered,
        "buffered_percent": share,
        "unbuffered_traced_syscalls": plain_traced,
        "events": info.get("events", stats.get("events")),
        "rdtsc_trapped": stats.get("rdtsc", 0),
        "rdtsc_buffered": stats.get("rdtsc_buffered", 0),
        "unbuffered_rdtsc_traps": plain_stops - plain_traced,
        "us_per_traced_syscall_or_trap": per,
        "samples_ns": times[name],
    }
    report["workloads"][name] = w
    print(f"{name:<14} {w['native_ms']:>8.2f}ms {w['recorded_ms']:>8.2f}ms "
          f"{w['recorded_unbuffered_ms']:>8.2f}ms {w['replayed_ms']:>8.2f}ms "
          f"{w['ratio_recorded_native']:>7.2f}x {w['ratio_unbuffered_buffered']:>8.1f}x "
          f"{share:>8.1f}% {(f'{per:.1f}' if per is not None else 'n/a'):>9}")
med = {m: statistics.median(v) for m, v in times["desched"].items()}
dstats = json.load(open(f"{work}/desched-info.json")).get("stats", {})
report["desched"] = {
    "native_ms": med["native"] / 1e6,
    "events_ms": med["events"] / 1e6,
    "polled_ms": med["polled"] / 1e6,
    "ratio_polled_events": med["polled"] / med["events"],
    "desched_events": dstats.get("desched_events", 0),
    "desched_signals": dstats.get("desched_signals", 0),
    "samples_ns": times["desched"],
}
d = report["desched"]
print(f"desched (pipe_pingpong 1000 rounds): native {d['native_ms']:.1f}ms, "
      f"desched events {d['events_ms']:.1f}ms, polled {d['polled_ms']:.1f}ms "
      f"(polled/events {d['ratio_polled_events']:.2f}x; {d['desched_events']} unwinds, "
      f"{d['desched_signals']} by signal)")
report["long_loops"] = {}
for name in ("syscall_loop", "file_loop"):
    short = {m: statistics.median(v) for m, v in times[name].items()}
    long = {m: statistics.median(v) for m, v in times[f"{name}_long"].items()}
    marginal = (long["record"] - short["record"]) / (long["native"] - short["native"])
    w = report["long_loops"][name] = {
        "rounds": 10 * int(loop_n),
        "native_ms": long["native"] / 1e6,
        "recorded_ms": long["record"] / 1e6,
        "ratio_recorded_native": long["record"] / long["native"],
        "marginal_ratio": marginal,
        "samples_ns": times[f"{name}_long"],
    }
    print(f"{name} {w['rounds']} rounds: native {w['native_ms']:.1f}ms, "
          f"buffered {w['recorded_ms']:.1f}ms ({w['ratio_recorded_native']:.2f}x); "
          f"marginal ratio of the loop's syscalls {marginal:.2f}x")
with open(result, "w") as f:
    json.dump(report, f, indent=2)
    f.write("\n")
PY
cp "$RESULT" "$OUT/recorder-latest.json"
echo "bench-recorder: wrote $RESULT" >&2
