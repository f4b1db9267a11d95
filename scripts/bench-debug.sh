#!/usr/bin/env bash
# Debugger-engine benchmark (issue 13): what debugging a replay costs.
# For fixtures/c/syscall_loop.c (many events) and fixtures/c/dbg_spin.c
# (about a second of compute inside one event), medians of RUNS runs
# (default 5) of: a plain replay; the debugger's start (to its first stop);
# the debugger's continue to the end with nothing armed, and with one
# breakpoint (hit once); on dbg_spin, continue to the end then
# reverse-continue back to the breakpoint at `spin` (across the second).
# The trial debug::bench::engine_vs_replay (tests/integration/debug_engine.rs)
# does the work; this script runs it with the release profile unless
# --dev is given. A benchmark, not a test: nothing fails on a slow number.
#
# Usage: scripts/bench-debug.sh [--runs N] [--dev]
set -euo pipefail

RUNS=5
PROFILE=(--release)
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --dev) PROFILE=(); shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "bench-debug: unknown argument $1" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RRTEST_BENCH_RUNS="$RUNS" cargo test --locked "${PROFILE[@]}" --test integration -- \
  --ignored --exact debug::bench::engine_vs_replay --nocapture --test-threads 1
