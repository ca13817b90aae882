#!/usr/bin/env bash
# A sizing table for kvsync zk2etcd: what a live task costs at each tree size, for planning a
# migration (docs/benchmarks.md, "Sizing zk2etcd"). Starts its own standalone ZooKeeper and
# single-member etcd (loopback, free ports, a temp dir) and, for each size in --sizes:
#   - loads a Dubbo-like tree (95 ephemeral providers per service, 1 KB URL-encoded names);
#   - runs kvsync zk2etcd live (defaults, --fullsync-interval INTERVAL) and measures
#       idle:  from the end of the initial sync to the end of one periodic pair of rounds:
#              kvsync CPU (% of a core), RSS, ZooKeeper requests/s (server packets received),
#              etcd requests/s (server gRPC calls handled), the round's seconds;
#       churn: --rate changes/s for --churn-seconds (kvsync-bench zk-churn): the same figures;
#   - the two options' costs, each in its own live run with one periodic pair: per-service
#     parity counting (--parity-top 0 turns it off: CPU s per periodic pair with vs without) and
#     the lease field (--ephemeral-lease-ttl 30s: RSS and CPU s per pair with vs without).
# Writes a markdown section into --out (default docs/benchmarks.md), replacing the previous one.
#
# Usage: bench/sizing.sh [--sizes 10000,100000,300000] [--rate 100] [--churn-seconds 30]
#                        [--interval 20] [--out FILE] [--no-build] [--keep]
# Environment: BUILD_DIR (default ./build-bench), ETCD, ETCDCTL, ZK_JAVA, ZK_CLASSPATH.
set -euo pipefail

BENCH_NAME=sizing.sh
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
COMMAND_LINE="bench/$BENCH_NAME${*:+ $*}"

SIZES=10000,100000,300000
RATE=100
CHURN_SECONDS=30
INTERVAL=20
PER_SERVICE=100
NAME_BYTES=1024
ROOT_ZNODE=/dubbo
ETCD_PREFIX=/zk

while [[ $# -gt 0 ]]; do
  case $1 in
    --sizes) [[ ${2:-} =~ ^[0-9]+(,[0-9]+)*$ ]] || die_usage "--sizes needs a comma-separated list of integers"
      SIZES=$2; shift 2 ;;
    --rate) is_uint "${2:-}" && [[ $2 -gt 0 ]] || die_usage "--rate needs a positive integer"
      RATE=$2; shift 2 ;;
    --churn-seconds) is_uint "${2:-}" && [[ $2 -gt 0 ]] || die_usage "--churn-seconds needs a positive integer"
      CHURN_SECONDS=$2; shift 2 ;;
    --interval) is_uint "${2:-}" && [[ $2 -gt 0 ]] || die_usage "--interval needs a positive integer (seconds)"
      INTERVAL=$2; shift 2 ;;
    *) common_arg "$@"; shift "$ARG_SHIFT" ;;
  esac
done
parse_sizes "$SIZES" "$PER_SERVICE"

require_tools "$ETCD" "$ETCDCTL" "$ZK_JAVA" curl awk timeout
build_binaries
setup_workdir kvsync-sizing

now() { date +%s.%N; }
TICK=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_mb() { awk '$1 == "VmRSS:" { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
hwm_mb() { awk '$1 == "VmHWM:" { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
# zk_packets PORT: requests the ZooKeeper server received so far.
zk_packets() { zk_word "$1" mntr | awk '$1 == "zk_packets_received" { print $2 }'; }
# etcd_calls EP: unary gRPC calls etcd handled so far (Range, Txn, Put, LeaseKeepAlive streams
# count once per stream), from its /metrics.
etcd_calls() {
  curl -s "http://$1/metrics" | awk '/^grpc_server_handled_total/ { s += $NF } END { printf "%.0f", s }'
}
rounds_done() { grep -c '"full sync round done"' "$1" || true; }
last_round_seconds() {
  sed -n 's/.*"full sync round done".*"seconds":\([0-9.]*\).*/\1/p' "$1" | tail -n "$2" | paste -sd+ - | awk '{ printf "%.1f", 0 + $0 }' 2>/dev/null || echo 0
}

# start_live LOG EXTRA...: kvsync zk2etcd against the current ZooKeeper and etcd; sets LIVE_PID
# and waits for the initial sync.
start_live() {
  local logfile=$1 admin=""
  shift
  admin_addr admin
  start_bg LIVE_PID "$logfile" "$KVSYNC" zk2etcd --zk-servers "$ZK_EP" --zk-prefix "$ROOT_ZNODE" \
    --etcd-endpoints "$DST_EP" --etcd-prefix "$ETCD_PREFIX" --fullsync-interval "${INTERVAL}s" \
    --admin-addr "$admin" --status-interval 0 "$@"
  local i
  for ((i = 0; i < 6000; i++)); do
    [[ $(rounds_done "$logfile") -ge 1 ]] && return 0
    kill -0 "$LIVE_PID" 2>/dev/null || fail "kvsync zk2etcd exited: $(tail -2 "$logfile")"
    sleep 0.1
  done
  fail "the initial sync did not finish in 600 s"
}

# wait_pair LOG BEFORE: waits for the periodic pair after the BEFORE-th round: its round1 and,
# when round1 saw differences, the round2 that follows it at once.
wait_pair() {
  local logfile=$1 before=$2 want=$(($2 + 1)) i last
  for ((i = 0; i < 10 * (INTERVAL + 600); i++)); do
    if [[ $(rounds_done "$logfile") -ge $want ]]; then
      last=$(grep '"full sync round done"' "$logfile" | tail -1)
      if [[ $last == *'"mode":"round1"'* && $last != *'"differences":0,'* ]]; then
        want=$((want + 1))
        continue
      fi
      return 0
    fi
    kill -0 "$LIVE_PID" 2>/dev/null || fail "kvsync zk2etcd exited: $(tail -2 "$logfile")"
    sleep 0.1
  done
  fail "no periodic full sync within $((INTERVAL + 600)) s"
}

# measure NAME: the figures of the window from `mark` to now into M[$size,NAME,*].
mark() {
  T0=$(now)
  K0=$(cpu_ticks "$LIVE_PID")
  Z0=$(zk_packets "$ZK_PORT")
  E0=$(etcd_calls "$DST_EP")
}
measure() {
  local name=$1 t1 k1 z1 e1 dt
  t1=$(now)
  k1=$(cpu_ticks "$LIVE_PID")
  z1=$(zk_packets "$ZK_PORT")
  e1=$(etcd_calls "$DST_EP")
  dt=$(calc "$t1 - $T0" 3)
  M[$size,$name,seconds]=$(calc "$dt" 0)
  M[$size,$name,cpu_s]=$(calc "($k1 - $K0) / $TICK" 1)
  M[$size,$name,cpu_pct]=$(calc "100 * ($k1 - $K0) / $TICK / $dt" 1)
  M[$size,$name,zk_rps]=$(calc "($z1 - $Z0) / $dt" 0)
  M[$size,$name,etcd_rps]=$(calc "($e1 - $E0) / $dt" 0)
  M[$size,$name,rss]=$(rss_mb "$LIVE_PID")
}

declare -A M
log "work dir $WORK; sizes=$SIZES rate=$RATE churn=${CHURN_SECONDS}s interval=${INTERVAL}s"
for size in "${SIZE_LIST[@]}"; do
  services=$((size / PER_SERVICE))
  nodes=$((services * PER_SERVICE + 1))
  if [[ -n ${LOADER_PID:-} ]]; then stop_pid "$LOADER_PID"; fi
  if [[ -n ${ZK_PID:-} ]]; then stop_pid "$ZK_PID"; rm -rf "$ZK_DIR/data"; fi
  if [[ -n ${DST_PID:-} ]]; then stop_pid "$DST_PID"; rm -rf "$DST_DIR/data"; fi
  start_zk "n$size" ZK 2048
  start_etcd dst DST
  load_dubbo_tree "$services" $((PER_SERVICE - 5)) "$NAME_BYTES" "$WORK/load-$size.log"
  M[$size,nodes]=$nodes
  M[$size,services]=$services
  log "$size: loaded $nodes znodes ($services services)"

  # Live, defaults: initial sync, one idle periodic pair, then churn.
  LOG=$WORK/live-$size.log
  t0=$(now)
  start_live "$LOG"
  M[$size,initial_s]=$(calc "$(now) - $t0" 1)
  M[$size,initial_hwm]=$(hwm_mb "$LIVE_PID")
  mark
  before=$(rounds_done "$LOG")
  wait_pair "$LOG" "$before"
  measure idle
  M[$size,round_s]=$(last_round_seconds "$LOG" $(($(rounds_done "$LOG") - before)))
  mark
  out=$("$BENCH" zk-churn --zk-servers "$ZK_EP" --root "$ROOT_ZNODE" --etcd-endpoints "$DST_EP" \
    --etcd-prefix "$ETCD_PREFIX" --rate "$RATE" --duration "$CHURN_SECONDS" --settle 5)
  measure churn
  M[$size,churn_p99]=$(json p99_ms "$out")
  M[$size,churn_rate]=$(json send_rate "$out")
  M[$size,hwm]=$(hwm_mb "$LIVE_PID")
  stop_pid "$LIVE_PID"
  log "$size: idle ${M[$size,idle,cpu_pct]}% zk ${M[$size,idle,zk_rps]}/s etcd ${M[$size,idle,etcd_rps]}/s; churn ${M[$size,churn,cpu_pct]}% p99 ${M[$size,churn_p99]} ms"

  # Costs: one periodic pair each without parity counting and with the lease field.
  for variant in noparity lease; do
    LOG=$WORK/$variant-$size.log
    if [[ $variant == noparity ]]; then start_live "$LOG" --parity-top 0; else start_live "$LOG" --ephemeral-lease-ttl 30s; fi
    mark
    before=$(rounds_done "$LOG")
    wait_pair "$LOG" "$before"
    measure "$variant"
    M[$size,$variant,hwm]=$(hwm_mb "$LIVE_PID")
    M[$size,$variant,round_s]=$(last_round_seconds "$LOG" $(($(rounds_done "$LOG") - before)))
    stop_pid "$LIVE_PID"
  done
  log "$size: pair CPU s: parity ${M[$size,idle,cpu_s]} vs none ${M[$size,noparity,cpu_s]}; lease RSS ${M[$size,lease,rss]} vs ${M[$size,idle,rss]} MB"
done

host_facts
SECTION=$WORK/section.md
{
  echo "<!-- sizing-results:begin (generated by bench/sizing.sh; edits here are overwritten) -->"
  echo "### Sizing zk2etcd"
  echo
  echo "- Command: \`$COMMAND_LINE\` (binaries of \`$(basename "$BUILD_DIR")\`)"
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Machine: $(nproc) CPUs ($CPU), $MEM_GB GiB RAM; ZooKeeper (standalone, \`-Xmx2048m\`), etcd"
  echo "  $ETCD_VERSION (one member), kvsync at $GIT_REV and the load generator share it"
  echo "- Trees: \`$ROOT_ZNODE/<service>/{providers,consumers,configurators,routers}\`, 95 ephemeral"
  echo "  providers per service with ${NAME_BYTES}-byte names; kvsync defaults except"
  echo "  \`--fullsync-interval ${INTERVAL}s\` (the default is 5m: idle costs below are per periodic pair,"
  echo "  so at 5m they are about $(calc "(${INTERVAL} + 1) / 301" 2)× as much per second)"
  echo "- Idle: one periodic pair of rounds after the initial sync, window from its end to the pair's"
  echo "  end. Churn: $RATE changes/s (creates, deletes, data changes of providers) for ${CHURN_SECONDS} s."
  echo "  Requests/s: ZooKeeper's \`zk_packets_received\` and etcd's \`grpc_server_handled_total\`, all"
  echo "  clients (kvsync, and during churn the load generator's ZooKeeper writes and etcd watch)"
  echo
  echo "| znodes (services) | initial sync s, peak RSS MB | periodic pair: s, kvsync CPU s | idle: % of a core, RSS MB, ZooKeeper req/s, etcd req/s | churn: % of a core, ZooKeeper req/s, etcd req/s, p99 ms, peak RSS MB |"
  echo "|---|---|---|---|---|"
  for s in "${SIZE_LIST[@]}"; do
    echo "| $(fmt "${M[$s,nodes]}") ($(fmt "${M[$s,services]}")) | ${M[$s,initial_s]}, ${M[$s,initial_hwm]} | ${M[$s,round_s]}, ${M[$s,idle,cpu_s]} | ${M[$s,idle,cpu_pct]}%, ${M[$s,idle,rss]}, $(fmt "${M[$s,idle,zk_rps]}"), $(fmt "${M[$s,idle,etcd_rps]}") | ${M[$s,churn,cpu_pct]}%, $(fmt "${M[$s,churn,zk_rps]}"), $(fmt "${M[$s,churn,etcd_rps]}"), ${M[$s,churn_p99]}, ${M[$s,hwm]} |"
  done
  echo
  echo "What the options cost (each its own live run, one periodic pair after the initial sync):"
  echo
  echo "| znodes | pair CPU s: parity on (default) / \`--parity-top 0\` | pair CPU s, RSS MB, peak RSS MB: \`--ephemeral-lease-ttl 30s\` / off |"
  echo "|---|---|---|"
  for s in "${SIZE_LIST[@]}"; do
    echo "| $(fmt "${M[$s,nodes]}") | ${M[$s,idle,cpu_s]} / ${M[$s,noparity,cpu_s]} | ${M[$s,lease,cpu_s]}, ${M[$s,lease,rss]}, ${M[$s,lease,hwm]} / ${M[$s,idle,cpu_s]}, ${M[$s,idle,rss]}, ${M[$s,initial_hwm]} |"
  done
  echo
  echo "Reading it: a periodic pair re-reads the whole tree and the etcd range (one round when"
  echo "nothing differs), so idle cost grows with the tree and shrinks with a longer"
  echo "\`--fullsync-interval\`; incremental work follows the change rate, not the tree size. Single"
  echo "runs on a shared 2-CPU machine: differences of a few tenths of a CPU second are noise."
  echo "Every size, 300k included, is a reduced-time run (one periodic pair, ${CHURN_SECONDS} s of churn); with"
  echo "\`--fullsync-interval ${INTERVAL}s\` the churn window of the larger trees overlaps a periodic round, whose"
  echo "reads are in its ZooKeeper requests/s and CPU."
  echo "<!-- sizing-results:end -->"
} >"$SECTION"
publish_section sizing-results "$SECTION"
OK=1
