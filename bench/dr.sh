#!/usr/bin/env bash
# The disaster-recovery day, measured (kvsync status / promote / failback), in one run:
#   (a) switchover: a writer puts --rate new keys/s at the source (kvsync-bench seq-put, each
#       revision one key) while kvsync etcd2etcd mirrors them; `kvsync promote` is timed from
#       command start to exit (the destination writable and fenced); the destination is then
#       compared with the source at the revision the promotion reported;
#   (b) failover: the same, but the source etcd is frozen (SIGSTOP: the city is dark) and
#       `kvsync promote --force` is timed; then the source is thawed and the RPO figure is
#       checked: the destination must equal the source at the printed revision, and the writes
#       actually lost (source keys after it) are set beside the printed lower bound;
#   (c) failback: --keys keys mirrored by a full sync (the anchor: the full-sync rate), the
#       destination promoted, --divergence % of the keys overwritten at the old primary, then
#       `kvsync failback --lost-writes` timed until its full sync is done; the lost-writes file
#       must hold exactly the overwritten keys.
# A markdown section goes into --out (default docs/benchmarks.md), replacing the one between
# the dr-results markers.
#
# Usage: bench/dr.sh [--rate 1000] [--keys 100000] [--divergence 1] [--out FILE] [--no-build]
#                    [--keep]
# Environment: BUILD_DIR (default ./build-bench), ETCD (default etcd), ETCDCTL (etcdctl).
set -euo pipefail

BENCH_NAME=dr.sh
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
COMMAND_LINE="bench/$BENCH_NAME${*:+ $*}"

RATE=1000
KEYS=100000
DIVERGENCE=1
MIRROR_SECONDS=5

while [[ $# -gt 0 ]]; do
  case $1 in
    --rate) is_uint "${2:-}" && [[ $2 -gt 0 ]] || die_usage "--rate needs a positive integer"
      RATE=$2; shift 2 ;;
    --keys) is_uint "${2:-}" && [[ $2 -ge 100 ]] || die_usage "--keys needs an integer >= 100"
      KEYS=$2; shift 2 ;;
    --divergence) is_uint "${2:-}" && [[ $2 -ge 1 && $2 -le 100 ]] || die_usage "--divergence needs a percentage 1-100"
      DIVERGENCE=$2; shift 2 ;;
    *) common_arg "$@"; shift "$ARG_SHIFT" ;;
  esac
done

require_tools "$ETCD" "$ETCDCTL" awk
build_binaries
setup_workdir kvsync-dr
host_facts

now_ms() { date +%s%3N; }
# wait_log FILE PATTERN PID: until FILE has PATTERN (10 minutes), failing if PID exits.
wait_log() {
  local i
  for ((i = 0; i < 6000; i++)); do
    grep -q "$2" "$1" && return 0
    kill -0 "$3" 2>/dev/null || fail "process $3 exited: $(tail -3 "$1")"
    sleep 0.1
  done
  fail "no '$2' in $1 within 10 minutes"
}
# mirror_under_load NAME: a source with a seq-put writer at --rate and kvsync mirroring it for
# MIRROR_SECONDS after catching up; sets <NAME>_SRC, <NAME>_DST, <NAME>_SRC_PID, <NAME>_MIRROR,
# <NAME>_WRITER.
mirror_under_load() {
  local name=$1 admin
  start_etcd "$name-src" S
  start_etcd "$name-dst" D
  printf -v "${name}_SRC" '%s' "$S_EP"; printf -v "${name}_DST" '%s' "$D_EP"
  printf -v "${name}_SRC_PID" '%s' "$S_PID"
  start_bg "${name}_WRITER" "$WORK/writer-$name.log" "$BENCH" seq-put --endpoints "$S_EP" \
    --prefix /dr/ --rate "$RATE"
  admin_addr admin
  start_bg "${name}_MIRROR" "$WORK/mirror-$name.log" "$KVSYNC" etcd2etcd --src-endpoints "$S_EP" \
    --dst-endpoints "$D_EP" --prefix /dr/ --admin-addr "$admin" --log-format text \
    --status-interval 0 --check-interval 0
  wait_log "$WORK/mirror-$name.log" "caught up" "$(eval echo "\$${name}_MIRROR")"
  log "$name: mirroring $RATE puts/s for $MIRROR_SECONDS s"
  sleep "$MIRROR_SECONDS"   # the load the promotion happens under
}

# (a) switchover
mirror_under_load so
log "switchover: kvsync promote"
t0=$(now_ms)
"$KVSYNC" promote --src-endpoints "$so_SRC" --dst-endpoints "$so_DST" --prefix /dr/ \
  --output json --log-format text >"$WORK/switchover.json" 2>"$WORK/switchover.err" \
  || fail "switchover failed: $(cat "$WORK/switchover.err")"
t1=$(now_ms)
SO_MS=$((t1 - t0))
stop_pid "$so_WRITER"
SO_JSON=$(cat "$WORK/switchover.json")
SO_A=$(json applied_revision "$SO_JSON")
SO_WAIT=$(calc "$(json waited_seconds "$SO_JSON") * 1000" 0)
"$BENCH" compare --src "$so_SRC" --dst "$so_DST" --prefix /dr/ --src-revision "$SO_A" \
  >"$WORK/switchover-compare.json" || true
SO_CMP=$(cat "$WORK/switchover-compare.json")
SO_EXACT=$(json equal "$SO_CMP")
SO_AFTER=$(json src_changed_after "$SO_CMP")
log "switchover: ${SO_MS} ms (catch-up wait ${SO_WAIT} ms), destination = source@$SO_A: $SO_EXACT"

# (b) failover
mirror_under_load fo
kill -STOP "$fo_SRC_PID"
log "failover: source frozen, kvsync promote --force"
t0=$(now_ms)
"$KVSYNC" promote --src-endpoints "$fo_SRC" --dst-endpoints "$fo_DST" --prefix /dr/ --force \
  --output json --log-format text >"$WORK/failover.json" 2>"$WORK/failover.err" \
  || fail "failover failed: $(cat "$WORK/failover.err")"
t1=$(now_ms)
FO_MS=$((t1 - t0))
kill -CONT "$fo_SRC_PID"
stop_pid "$fo_WRITER"
FO_JSON=$(cat "$WORK/failover.json")
FO_A=$(json applied_revision "$FO_JSON")
FO_HEAD=$(json source_head "$FO_JSON")
FO_KNOWN=$(json revisions_not_applied "$FO_JSON")
FO_STALE=$(calc "($(json promoted_ms "$FO_JSON") - $(json applied_current_ms "$FO_JSON")) / 1000" 2)
"$BENCH" compare --src "$fo_SRC" --dst "$fo_DST" --prefix /dr/ --src-revision "$FO_A" \
  >"$WORK/failover-compare.json" || true
FO_CMP=$(cat "$WORK/failover-compare.json")
FO_EXACT=$(json equal "$FO_CMP")
FO_LOST=$(json src_changed_after "$FO_CMP")
log "failover: ${FO_MS} ms; printed applied $FO_A (head seen $FO_HEAD); destination = source@$FO_A: $FO_EXACT; lost $FO_LOST"

# (c) failback
start_etcd fb-primary P
start_etcd fb-standby B
log "failback: loading $(fmt "$KEYS") keys"
"$BENCH" load --endpoints "$P_EP" --prefix /fb/ --keys "$KEYS" >"$WORK/load.json"
"$KVSYNC" etcd2etcd --src-endpoints "$P_EP" --dst-endpoints "$B_EP" --prefix /fb/ --once \
  --admin-addr "" --log-format text --status-interval 0 >"$WORK/initial.log" 2>&1 \
  || fail "initial sync failed: $(tail -3 "$WORK/initial.log")"
FULL_S=$(calc "$(sed -n 's/.*full sync done.* seconds=\([0-9.]*\).*/\1/p' "$WORK/initial.log" | head -1)" 2)
"$KVSYNC" promote --src-endpoints "$P_EP" --dst-endpoints "$B_EP" --prefix /fb/ --force \
  --log-format text >"$WORK/fb-promote.txt" 2>&1 || fail "promote failed: $(cat "$WORK/fb-promote.txt")"
DIVERGED=$((KEYS * DIVERGENCE / 100))
"$BENCH" load --endpoints "$P_EP" --prefix /fb/ --keys "$DIVERGED" --seed 7 >"$WORK/diverge.json"
log "failback: $DIVERGED keys overwritten at the old primary; kvsync failback"
t0=$(now_ms)
start_bg FB_PID "$WORK/failback.log" "$KVSYNC" failback --src-endpoints "$P_EP" \
  --dst-endpoints "$B_EP" --prefix /fb/ --lost-writes "$WORK/lost.jsonl" --admin-addr "" \
  --log-format text --status-interval 0 --check-interval 0
wait_log "$WORK/failback.log" "full sync done" "$FB_PID"
t1=$(now_ms)
FB_S=$(calc "($t1 - $t0) / 1000" 2)
FB_SYNC_S=$(calc "$(sed -n 's/.*full sync done.* seconds=\([0-9.]*\).*/\1/p' "$WORK/failback.log" | head -1)" 2)
FB_WRITTEN=$(sed -n 's/.*full sync done.* mismatch_put=\([0-9]*\).*/\1/p' "$WORK/failback.log" | head -1)
stop_pid "$FB_PID"
LOST=$(wc -l <"$WORK/lost.jsonl")
"$BENCH" compare --src "$B_EP" --dst "$P_EP" --prefix /fb/ >"$WORK/fb-compare.json" || true
FB_EQUAL=$(json equal "$(cat "$WORK/fb-compare.json")")
log "failback: ${FB_S} s (its full sync ${FB_SYNC_S} s), lost writes $LOST of $DIVERGED, equal: $FB_EQUAL"

section=$WORK/section.md
cat >"$section" <<EOF
<!-- dr-results:begin -->
## Disaster recovery: promote and failback

\`$COMMAND_LINE\` at $GIT_REV on $(date -u +%Y-%m-%d), $(nproc) cores ($CPU), etcd $ETCD_VERSION,
single-member clusters on loopback. Promote time is the wall time of the command (start to
exit: the role record written, the destination writable and fenced). (a)/(b): a writer puts
$(fmt "$RATE") new keys/s at the source (each revision one key), kvsync mirrors with default
flags for $MIRROR_SECONDS s, then the promotion. The RPO check compares the destination with
the source *at the revision the promotion printed* (\`kvsync-bench compare --src-revision\`).

| | measured | target |
| --- | --- | --- |
| switchover promote (source reachable, writer still writing) | $(fmt "$SO_MS") ms, of which catch-up wait $(fmt "$SO_WAIT") ms | ≤ 5 s + drain: $(verdict le "$SO_MS" 5000) |
| switchover: destination = source at the printed revision $SO_A | $SO_EXACT ($(fmt "$SO_AFTER") source writes after the cutover: the writer ignored the source's \`demoted\` record) | exact |
| failover promote (\`--force\`, source frozen) | $(fmt "$FO_MS") ms | ≤ 5 s: $(verdict le "$FO_MS" 5000) |
| failover RPO: destination = source at the printed revision $FO_A | $FO_EXACT | exact |
| failover: writes actually lost vs printed | $(fmt "$FO_LOST") lost; printed: head last observed $FO_HEAD, $(fmt "$FO_KNOWN") revisions known not applied, source last seen at or below the applied revision $FO_STALE s before the promotion | lower bound; the rest listed by failback |
| failback of $(fmt "$KEYS") keys, $DIVERGENCE % diverged ($(fmt "$DIVERGED") keys) | $FB_S s to its full sync done (divergence scan + full sync $FB_SYNC_S s, $(fmt "${FB_WRITTEN:-0}") keys written) | at the full-sync rate: $(verdict le "$FB_S" "$FULL_S") |
| anchor: full sync of the same $(fmt "$KEYS") keys into an empty standby | $FULL_S s | |
| lost-writes file | $(fmt "$LOST") lines for $(fmt "$DIVERGED") overwritten keys; old primary = promoted cluster afterwards: $FB_EQUAL | exact |

The failover's printed head is what the task last observed (its head monitor and freshness
heartbeat run every second / \`--progress-interval\`, 5 s by default), so writes in the last
moments before the freeze are known only to the old primary: they are the difference between
"lost" and "known not applied", and \`kvsync failback --lost-writes\` lists every one of them.
<!-- dr-results:end -->
EOF
publish_section dr-results "$section"
OK=1
