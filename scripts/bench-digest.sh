#!/usr/bin/env bash
# Execution-point digest benchmark (issue 19): what one digest of a
# thread-heavy test's state costs, part by part, and what it costs a
# recording.
#
# 1. The parts (cargo-rrtest/examples/digest_cost.rs, release build): on
#    the main thread of the fixtures/threads test binary stopped with ptrace
#    100 ms into one_slot_ten_producers_ten_consumers (21 threads, about
#    140 lines of maps), ROUNDS rounds each (median, µs): the FPU
#    registers, reading and parsing /proc/TID/maps, reading the hashed
#    memory with one process_vm_readv per range and with one for all,
#    hashing with SHA-256 and XXH3-64, and a whole digest of each kind.
# 2. With --ab OLD NEW (two cargo-rrtest binaries): RUNS rounds of
#    `record --no-verify` of each workload, OLD then NEW, interleaved;
#    medians of the wall time, of the header's `stats.schedule.wall_ms` and
#    of the CPU time (user + system, recorder and program: less sensitive to
#    other load on the machine than wall time), NEW/OLD, and the execution points of the first trace of each. The
#    first trace of each is then verified with its own binary.
# Results: target/rrtest-bench/digest-<UTC time>.json.
#
# Usage: scripts/bench-digest.sh [--rounds N] [--runs N] [--only NAME] [--ab OLD NEW]
set -euo pipefail

ROUNDS=200
RUNS=5
ONLY=""
OLD=""
NEW=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    --ab) OLD="$2"; NEW="$3"; shift 3 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "bench-digest: unknown argument $1" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$TARGET/rrtest-bench"
WORK="$OUT/digest-work"
FIX_TARGET="$OUT/threads-target"
MANIFEST="$ROOT/fixtures/threads/Cargo.toml"
mkdir -p "$OUT" "$WORK"
command -v python3 >/dev/null || { echo "bench-digest: needs python3" >&2; exit 2; }
[[ -n "${EPOCHREALTIME:-}" ]] || { echo "bench-digest: needs bash >= 5 (EPOCHREALTIME)" >&2; exit 2; }

echo "bench-digest: building the digest_cost example (release)" >&2
cargo build --quiet --release -p cargo-rrtest --example digest_cost
COST="$TARGET/release/examples/digest_cost"
echo "bench-digest: building fixtures/threads tests" >&2
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
[[ -x "$TEST_BIN" ]] || { echo "bench-digest: no test binary built" >&2; exit 2; }

# The workloads with execution points (preemptions of spinning threads,
# each two digests), and one without (hand-offs at futex syscalls only).
WORKLOADS=(spin_try_send_rendezvous spin_handoff_try_recv one_slot_ten_producers_ten_consumers)
PARTS=one_slot_ten_producers_ten_consumers
if [[ -n "$ONLY" ]]; then
  WORKLOADS=("$ONLY")
fi
export RUST_BACKTRACE=0

echo "bench-digest: the parts of a digest, $PARTS" >&2
"$COST" --rounds "$ROUNDS" -- "$TEST_BIN" --exact "tests::$PARTS" > "$WORK/parts.json"

SAMPLES="$WORK/ab-samples.txt"
: > "$SAMPLES"
if [[ -n "$OLD" ]]; then
  for b in "$OLD" "$NEW"; do
    [[ -x "$b" ]] || { echo "bench-digest: $b is not executable" >&2; exit 2; }
  done
  echo "bench-digest: $RUNS rounds of ${#WORKLOADS[@]} workloads recorded, old then new" >&2
  for ((r = 0; r < RUNS; r++)); do
    for w in "${WORKLOADS[@]}"; do
      for side in old new; do
        bin="$OLD"; [[ $side == new ]] && bin="$NEW"
        dir="$WORK/$w-$side-$r"
        rm -rf "$dir"
        t0=${EPOCHREALTIME/[.,]/}
        if ! /usr/bin/time -f "%U %S" -o "$WORK/last-cpu" \
            "$bin" record --no-verify -o "$dir" -- "$TEST_BIN" --exact "tests::$w" \
            >/dev/null 2>"$WORK/last-stderr"; then
          echo "bench-digest: $w/$side failed:" >&2
          tail -20 "$WORK/last-stderr" >&2
          exit 1
        fi
        t1=${EPOCHREALTIME/[.,]/}
        wall=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stats"].get("schedule",{}).get("wall_ms",0))' "$dir/header.json")
        cpu=$(awk 'END { printf "%d", ($1 + $2) * 1000 }' "$WORK/last-cpu")
        echo "$w $side $(((t1 - t0) * 1000)) $wall $cpu" >> "$SAMPLES"
        if [[ $r -gt 0 ]]; then rm -rf "$dir"; fi
      done
    done
  done
  for w in "${WORKLOADS[@]}"; do
    for side in old new; do
      bin="$OLD"; [[ $side == new ]] && bin="$NEW"
      if "$bin" verify "$WORK/$w-$side-0" >"$WORK/$w-$side-verify.txt" 2>&1; then
        echo verified > "$WORK/$w-$side-verified"
      else
        echo "NOT VERIFIED" > "$WORK/$w-$side-verified"
      fi
    done
  done
fi

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RESULT="$OUT/digest-$STAMP.json"
python3 - "$WORK" "$SAMPLES" "$RESULT" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" \
    "$PARTS" <<'PY'
import json, os, statistics, sys
work, samples, result, cpus, load, parts = sys.argv[1:]
out = {"cpus": int(cpus), "load": load, "parts": {}, "ab": {}}
for w in [parts]:
    p = json.load(open(f"{work}/parts.json"))
    out["parts"][w] = p
    m = p["median_us"]
    print(f"{w}: {p['ranges']} ranges, {p['bytes']} bytes ({p['maps_lines']} maps lines); "
          f"median us: fpregs {m['fpregs']:.1f}, maps read {m['maps_read']:.1f}, "
          f"parse {m['maps_parse']:.1f}, read per range {m['read_per_range']:.1f}, "
          f"batched {m['read_batched']:.1f}, sha256 {m['hash_sha256']:.1f}, "
          f"xxh3 {m['hash_xxh3']:.1f}; digest sha256 {m['digest_sha256']:.1f}, "
          f"xxh3 {m['digest_xxh3']:.1f} ({m['digest_sha256'] / m['digest_xxh3']:.1f}x)"
          + ("" if p["batched_read_same_bytes"] else "; BATCHED READ DIFFERS"))
rows = {}
for line in open(samples):
    w, side, ns, wall, cpu = line.split()
    rows.setdefault(w, {}).setdefault(side, []).append((int(ns) / 1e6, int(wall), int(cpu)))
for w, sides in rows.items():
    res = {}
    for side, v in sides.items():
        info = json.load(open(f"{work}/{w}-{side}-0/header.json"))["stats"]
        sched = info.get("schedule", {})
        res[side] = {"wall_ms": statistics.median(t for t, _, _ in v),
                     "header_wall_ms": statistics.median(h for _, h, _ in v),
                     "cpu_ms": statistics.median(c for _, _, c in v),
                     "samples_ms": [t for t, _, _ in v],
                     "samples_cpu_ms": [c for _, _, c in v],
                     "points": {k: sched.get(k, 0) for k in
                                ("points_spin", "points_return", "points_loop_exit", "points_anywhere")},
                     "switches": sched.get("switches", 0),
                     "verified": open(f"{work}/{w}-{side}-verified").read().strip()}
    res["new_over_old"] = res["new"]["wall_ms"] / res["old"]["wall_ms"]
    res["cpu_new_over_old"] = res["new"]["cpu_ms"] / max(res["old"]["cpu_ms"], 1)
    out["ab"][w] = res
    print(f"{w}: record old {res['old']['wall_ms']:.0f} ms, new {res['new']['wall_ms']:.0f} ms "
          f"(medians of {len(sides['old'])}), new/old {res['new_over_old']:.2f}; header wall "
          f"{res['old']['header_wall_ms']} / {res['new']['header_wall_ms']} ms; CPU (user+sys, "
          f"recorder and program) {res['old']['cpu_ms']} / {res['new']['cpu_ms']} ms "
          f"({res['cpu_new_over_old']:.2f}); points old "
          f"{res['old']['points']}, new {res['new']['points']}; "
          f"{res['old']['verified']} / {res['new']['verified']}")
print(f"({cpus} CPUs, load {load})")
with open(result, "w") as f:
    json.dump(out, f, indent=2)
    f.write("\n")
PY
echo "bench-digest: wrote $RESULT" >&2
