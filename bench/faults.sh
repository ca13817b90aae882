#!/usr/bin/env bash
# Long randomized fault run of `kvsync etcd2etcd` and its memory bound under a frozen
# destination, written to docs/benchmarks.md.
#
# 1. The randomized fault test (tests/integration/etcd2etcd_fault_test.cc) for --minutes
#    minutes: two --ha replicas mirror /r/ through TCP fault proxies while a writer makes puts,
#    deletes, delete-ranges, multi-op txns and lease-bound puts; a seeded sequence of faults
#    (kill -9 / SIGSTOP of the leader, cut / blackhole of each link, compaction of the source,
#    kill -9 and restart of each etcd) runs until the time is up. Reported: faults injected by
#    kind, writes made, and lost / resurrected / mismatched keys after convergence (from
#    dumps of both clusters), and whether the checkpoint ever went backwards.
# 2. The memory bound: TrustTest.FrozenDestinationWithLargeBacklogHealsWithinMemoryBound
#    (a 160,000-key backlog of 500 B values built while the destination is SIGSTOPped), its
#    peak RSS (VmHWM) with the default --watch-buffer-bytes.
# The section between the faults-results markers of --out (default docs/benchmarks.md) is
# replaced.
#
# Usage: bench/faults.sh [--minutes 30] [--seed 7] [--out FILE] [--no-build] [--keep]
# Environment: BUILD_DIR (default ./build-bench).
set -euo pipefail

BENCH_NAME=faults.sh
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
COMMAND_LINE="bench/$BENCH_NAME${*:+ $*}"

MINUTES=30
SEED=7
while [[ $# -gt 0 ]]; do
  case $1 in
    --minutes) is_uint "${2:-}" && [[ $2 -gt 0 ]] || die_usage "--minutes needs a positive integer"
      MINUTES=$2; shift 2 ;;
    --seed) is_uint "${2:-}" || die_usage "--seed needs a non-negative integer"
      SEED=$2; shift 2 ;;
    *) common_arg "$@"; shift "$ARG_SHIFT" ;;
  esac
done

require_tools "$ETCD" "$ETCDCTL" awk
build_binaries
if [[ $BUILD == 1 ]]; then
  ninja -C "$BUILD_DIR" -j2 etcd2etcd_fault_test etcd2etcd_trust_test >/dev/null
fi
FAULT_TEST=$BUILD_DIR/tests/integration/etcd2etcd_fault_test
TRUST_TEST=$BUILD_DIR/tests/integration/etcd2etcd_trust_test
[[ -x $FAULT_TEST && -x $TRUST_TEST ]] || fail "test binaries missing in $BUILD_DIR"
setup_workdir kvsync-faults
export KVSYNC_BINARY=$KVSYNC

log "randomized faults for $MINUTES min (seed $SEED)"
started=$(date +%s)
fault_rc=0
KVSYNC_FAULT_SEED=$SEED KVSYNC_FAULT_MINUTES=$MINUTES TMPDIR=$WORK \
  "$FAULT_TEST" >"$WORK/faults.log" 2>&1 || fault_rc=$?
fault_seconds=$(( $(date +%s) - started ))
summary=$(grep -m1 '^seed ' "$WORK/faults.log" || echo "no summary (see $WORK/faults.log)")
rounds=$(grep -c '^round ' "$WORK/faults.log" || true)
backwards=$(grep -c 'checkpoint went backwards' "$WORK/faults.log" || true)
fault_verdict=$([[ $fault_rc == 0 ]] && echo passed || echo "FAILED (exit $fault_rc)")
log "faults: $fault_verdict: $summary"

log "memory bound with a frozen destination"
mem_rc=0
TMPDIR=$WORK "$TRUST_TEST" --gtest_filter='*FrozenDestination*' >"$WORK/memory.log" 2>&1 || mem_rc=$?
peak=$(sed -n 's/.*peak RSS with a frozen destination.*: \([0-9]*\) MiB/\1/p' "$WORK/memory.log")
mem_verdict=$([[ $mem_rc == 0 ]] && echo passed || echo "FAILED (exit $mem_rc)")
log "memory: $mem_verdict, peak ${peak:-?} MiB"

section=$(cat <<EOF
<!-- faults-results:begin -->
## Fault and memory results

\`$COMMAND_LINE\` at $GIT_REV on $(date -u +%Y-%m-%d), $(nproc) cores.

| run | result |
| --- | --- |
| randomized faults, $MINUTES min ($fault_seconds s with convergence), $rounds rounds | $fault_verdict |
| faults and outcome | $summary |
| checkpoint went backwards | $backwards times |
| peak RSS, 160,000 × 500 B backlog, destination frozen, default \`--watch-buffer-bytes\` (32 MiB) | ${peak:-?} MiB ($mem_verdict; shipped pod limit 256 MiB) |
<!-- faults-results:end -->
EOF
)
if grep -q '<!-- faults-results:begin -->' "$OUT"; then
  awk -v section="$section" '
    /<!-- faults-results:begin -->/ { print section; skip = 1; next }
    /<!-- faults-results:end -->/ { skip = 0; next }
    !skip { print }' "$OUT" >"$WORK/out.md"
  cp "$WORK/out.md" "$OUT"
else
  printf '\n%s\n' "$section" >>"$OUT"
fi
log "results written to $OUT"
[[ $fault_rc == 0 && $mem_rc == 0 ]] && OK=1
[[ $OK == 1 ]]
