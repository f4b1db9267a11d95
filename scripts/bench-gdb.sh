#!/usr/bin/env bash
# Debugging benchmark (issue: gdb): wall times of `cargo rrtest replay
# --gdb-port` driven by `gdb -batch`, each the median of RUNS runs (default 5):
#   - first_prompt: from starting `replay --gdb-port 0` on the demo's failing
#     test `tests::checksum_matches` to gdb having read a register at the
#     program's first instruction (the server's start, the replay's exec,
#     gdb's connection and its first reads);
#   - replay: a plain `replay --quiet` of fixtures/c/syscall_loop.c with
#     N write+pread pairs (N = 300000 by default: about 1 s of replay here);
#   - gdb_continue: the same trace, `continue` to the end under gdb (the
#     session's fixed cost included); the ratio gdb_continue / replay;
#   - continue_command: in that session, the `continue` command alone, timed
#     by gdb's python from the prompt at the first instruction to the exit
#     (gdb's own start, the connection and the symbol reads left out); the
#     ratio continue_command / replay (the plain replay's own start-up stays
#     in its figure, so this ratio does not flatter the debugger);
#   - reverse_continue: on that trace, `break main`, `continue`, `break
#     _exit`, `continue`, then `reverse-continue` back to main: the session
#     with the reverse-continue minus the same session without it.
# gdb is given the server's `set sysroot` line (what `--gdb` does), so it
# reads the recorded libraries locally; SYSROOT=0 leaves it out (gdb then
# reads them through the connection, `vFile:`).
# Results go to target/rrtest-bench/gdb-<UTC time>.json (and gdb-latest.json).
# A benchmark, not a test: it asserts nothing about speed.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
N=${N:-300000}
SYSROOT=${SYSROOT:-1}
cargo build --quiet -p cargo-rrtest
BIN=$PWD/target/debug/cargo-rrtest
OUT=$PWD/target/rrtest-bench
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# A server on TRACE in the background ($SERVER); its address in $ADDR once
# it listens.
serve() {
  : >"$WORK/server.err"
  "$BIN" replay --quiet --gdb-port 0 "$1" >/dev/null 2>"$WORK/server.err" &
  SERVER=$!
  until grep -q 'target extended-remote' "$WORK/server.err"; do sleep 0.01; done
  ADDR=$(grep -o '127.0.0.1:[0-9]*' "$WORK/server.err" | head -1)
  ROOT=()
  if [ "$SYSROOT" = 1 ]; then
    ROOT=(-ex "$(grep -o 'set sysroot .*' "$WORK/server.err" | head -1)")
  fi
}

# One timed session: gdb on FILE with the commands after it; sets $TOOK.
session() {
  local trace=$1 file=$2; shift 2
  local args=()
  for c in "$@"; do args+=(-ex "$c"); done
  local t0
  t0=$(now)
  serve "$trace"
  gdb -batch -nx -ex "file $file" "${ROOT[@]}" -ex "target extended-remote $ADDR" "${args[@]}" >"$WORK/gdb.out" 2>&1
  wait "$SERVER"
  TOOK=$(echo "$(now) - $t0" | bc -l)
}

# The demo's failing test, recorded.
DEMO_TARGET=$PWD/target/rrtest-bench/demo-target
cargo test --quiet --no-run --manifest-path fixtures/demo/Cargo.toml --target-dir "$DEMO_TARGET" 2>/dev/null
DEMO=$(ls -t "$DEMO_TARGET"/debug/deps/demo_core-* | grep -v '\.' | head -1)
"$BIN" record --no-verify -o "$WORK/demo" -- "$DEMO" --exact tests::checksum_matches --nocapture >/dev/null 2>&1 || true

gcc -O1 -g -o "$WORK/syscall_loop" fixtures/c/syscall_loop.c
"$BIN" record --no-verify -o "$WORK/loop" -- "$WORK/syscall_loop" "$N" >/dev/null

first=() replay=() cont=() cmd=() plain=() rev=()
for _ in $(seq "$RUNS"); do
  session "$WORK/demo" "$DEMO" 'info registers rip'; first+=("$TOOK")
  t0=$(now); "$BIN" replay --quiet "$WORK/loop"; replay+=("$(echo "$(now) - $t0" | bc -l)")
  session "$WORK/loop" "$WORK/syscall_loop" 'python import time; t0 = time.time()' continue \
    'python print("continue_command_s", time.time() - t0)'
  cont+=("$TOOK")
  took=$(awk '/^continue_command_s/ {print $2}' "$WORK/gdb.out")
  [ -n "$took" ] || { echo "gdb printed no continue time:"; cat "$WORK/gdb.out"; exit 1; }
  cmd+=("$took")
  session "$WORK/loop" "$WORK/syscall_loop" 'break main' continue 'break _exit' continue; plain+=("$TOOK")
  session "$WORK/loop" "$WORK/syscall_loop" 'break main' continue 'break _exit' continue reverse-continue; rev+=("$TOOK")
  grep -q 'Breakpoint 1, main' "$WORK/gdb.out" || { echo "reverse-continue did not reach main:"; cat "$WORK/gdb.out"; }
done
m_first=$(printf '%s\n' "${first[@]}" | median)
m_replay=$(printf '%s\n' "${replay[@]}" | median)
m_cont=$(printf '%s\n' "${cont[@]}" | median)
m_cmd=$(printf '%s\n' "${cmd[@]}" | median)
m_plain=$(printf '%s\n' "${plain[@]}" | median)
m_rev=$(printf '%s\n' "${rev[@]}" | median)
reverse=$(echo "$m_rev - $m_plain" | bc -l)
ratio=$(echo "$m_cont / $m_replay" | bc -l)
cmd_ratio=$(echo "$m_cmd / $m_replay" | bc -l)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
cat >"$OUT/gdb-$stamp.json" <<EOF
{"runs": $RUNS, "n": $N, "sysroot": $SYSROOT,
 "first_prompt_s": $m_first,
 "replay_s": $m_replay, "gdb_continue_s": $m_cont, "continue_over_replay": $ratio,
 "continue_command_s": $m_cmd, "continue_command_over_replay": $cmd_ratio,
 "reverse_continue_s": $reverse}
EOF
cp "$OUT/gdb-$stamp.json" "$OUT/gdb-latest.json"
printf 'first prompt (demo test)      %.3f s\n' "$m_first"
printf 'plain replay (N=%s)       %.3f s\n' "$N" "$m_replay"
printf 'continue to the end in gdb    %.3f s  (%.2fx the plain replay; whole session)\n' "$m_cont" "$ratio"
printf '  the continue command alone  %.3f s  (%.2fx the plain replay)\n' "$m_cmd" "$cmd_ratio"
printf 'reverse-continue to main      %.3f s\n' "$reverse"
