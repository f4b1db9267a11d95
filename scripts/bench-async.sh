#!/usr/bin/env bash
# Asynchronous-event benchmark (issue 4, DESIGN.md §6 and §10): what it costs
# to record, verify and replay programs whose events are not syscalls.
#   - spin_wait: fixtures/c/spin_wait_threads.c, two threads handing a flag
#     back and forth with pure spin waits (every switch is a preemption at an
#     execution point);
#   - timer_storm: fixtures/c/timer_compute_segv_altstack.c, ITIMER_REAL and
#     ITIMER_PROF signals every 10 ms over a ~0.3 s syscall-free compute loop
#     (held-back signals delivered at execution points), plus SIGSEGV;
#   - fork_exec: fixtures/c/fork_exec_pipes.c, a fork/exec/posix_spawn tree
#     joined by pipes.
# For each, medians of RUNS runs (default 5) of: native; `record --no-verify`;
# `verify` of that trace (the finalizing replay); `replay` of the verified
# trace; and `record` with its default verification. Then, once each, the
# ptrace stops (the replayer's wait4 calls, counted with strace -c) of verify
# and replay, with the trace's event counts from `info --json`
# (events, signals, async_events), giving stops per event and the extra stops
# per asynchronous event relative to a replay that stopped once per event.
# Results: target/rrtest-bench/async-<UTC time>.json and async-latest.json.
# A benchmark, not a test: nothing fails on a slow number.
#
# Usage: scripts/bench-async.sh [--runs N]
# Env:   RRTEST_BIN=path  use this cargo-rrtest instead of building
#        target/release/cargo-rrtest.
set -euo pipefail

RUNS=5
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "bench-async: unknown argument $1" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$TARGET/rrtest-bench"
WORK="$OUT/async-work"
mkdir -p "$OUT" "$WORK"
for tool in python3 gcc; do
  command -v "$tool" >/dev/null || { echo "bench-async: needs $tool" >&2; exit 2; }
done

if [[ -n "${RRTEST_BIN:-}" ]]; then
  RR="$RRTEST_BIN"
else
  echo "bench-async: building cargo-rrtest (release)" >&2
  cargo build --quiet --release -p cargo-rrtest --bin cargo-rrtest
  RR="$TARGET/release/cargo-rrtest"
fi
RR="$(cd "$(dirname "$RR")" && pwd)/$(basename "$RR")"
[[ -x "$RR" ]] || { echo "bench-async: $RR is not executable" >&2; exit 2; }

for f in spin_wait_threads timer_compute_segv_altstack fork_exec_pipes; do
  gcc -O1 -g -pthread -Wall -Wextra -o "$WORK/$f" "fixtures/c/$f.c"
done

export RR WORK RUNS OUT
exec python3 - <<'PY'
import datetime, json, os, re, shutil, statistics, subprocess, time

RR, WORK, RUNS, OUT = os.environ["RR"], os.environ["WORK"], int(os.environ["RUNS"]), os.environ["OUT"]
WORKLOADS = {
    "spin_wait": "spin_wait_threads",
    "timer_storm": "timer_compute_segv_altstack",
    "fork_exec": "fork_exec_pipes",
}
HAVE_STRACE = shutil.which("strace") is not None


def timed(cmd, cwd):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"bench-async: {cmd} exited {p.returncode}: {p.stderr.decode()[-500:]}")
    return dt


def info(trace):
    p = subprocess.run([RR, "info", "--json", trace], capture_output=True, check=True)
    return json.loads(p.stdout)


def stops(cmd, cwd):
    """The replayer's wait4 calls: one per ptrace stop it handled."""
    if not HAVE_STRACE:
        return None
    log = os.path.join(WORK, "strace.txt")
    subprocess.run(["strace", "-c", "-e", "trace=wait4,waitid", "-o", log] + cmd, cwd=cwd,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    n = 0
    for line in open(log):
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)(?:\s+\d+)?\s+(wait4|waitid)\s*$", line)
        if m:
            n += int(m.group(1))
    return n


results = {}
for name, fixture in WORKLOADS.items():
    exe = os.path.join(WORK, fixture)
    cwd = os.path.join(WORK, name)
    os.makedirs(cwd, exist_ok=True)
    samples = {k: [] for k in ("native", "record_no_verify", "verify", "replay", "record_verified")}
    for i in range(RUNS):
        trace = os.path.join(WORK, f"{name}-trace")
        shutil.rmtree(trace, ignore_errors=True)
        samples["native"].append(timed([exe], cwd))
        samples["record_no_verify"].append(timed([RR, "record", "--no-verify", "-o", trace, "--", exe], cwd))
        samples["verify"].append(timed([RR, "verify", trace], cwd))
        samples["replay"].append(timed([RR, "replay", trace], cwd))
        shutil.rmtree(trace, ignore_errors=True)
        samples["record_verified"].append(timed([RR, "record", "-o", trace, "--", exe], cwd))
    j = info(trace)
    st = j.get("stats", {})
    entry = {k: {"median_s": round(statistics.median(v), 4), "samples_s": [round(x, 4) for x in v]}
             for k, v in samples.items()}
    entry["verified"] = j.get("verified")
    entry["verification_failure"] = j.get("verification_failure")
    for k in ("events", "signals", "async_events", "traced_syscalls"):
        entry[k] = st.get(k, j.get(k))
    v_stops = stops([RR, "verify", trace], cwd)
    r_stops = stops([RR, "replay", trace], cwd)
    entry["verify_stops"], entry["replay_stops"] = v_stops, r_stops
    ev, ae = entry["events"] or 0, entry["async_events"] or 0
    if r_stops is not None and ev:
        entry["replay_stops_per_event"] = round(r_stops / ev, 2)
        entry["verify_stops_per_event"] = round(v_stops / ev, 2)
        if ae:
            # Stops beyond one per event (and one per traced syscall's entry
            # and exit), charged to the asynchronous events.
            base = ev + (entry["traced_syscalls"] or 0)
            entry["replay_extra_stops_per_async_event"] = round(max(r_stops - base, 0) / ae, 2)
            entry["verify_extra_stops_per_async_event"] = round(max(v_stops - base, 0) / ae, 2)
    results[name] = entry
    print(f"{name:12} native {entry['native']['median_s']:.3f}s  record(no-verify) "
          f"{entry['record_no_verify']['median_s']:.3f}s  verify {entry['verify']['median_s']:.3f}s  "
          f"replay {entry['replay']['median_s']:.3f}s  record+verify {entry['record_verified']['median_s']:.3f}s  "
          f"events {ev} signals {entry['signals']} async {ae}  stops verify/replay {v_stops}/{r_stops}  "
          f"verified {entry['verified']}")

now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
doc = {"benchmark": "async", "when": now, "runs": RUNS, "cargo_rrtest": RR,
       "cpus": os.cpu_count(), "kernel": os.uname().release, "loadavg": os.getloadavg(),
       "workloads": results}
for path in (os.path.join(OUT, f"async-{now}.json"), os.path.join(OUT, "async-latest.json")):
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
print(f"bench-async: wrote {OUT}/async-{now}.json")
PY
