#!/usr/bin/env bash
# kvsync zk2etcd on Dubbo-like ZooKeeper trees, against the open-source zk2etcd's figures (quoted
# from the issue, not re-measured here) and against the ZooKeeper read ceiling measured in the
# same run. Starts its own standalone ZooKeeper and single-member etcd servers (loopback, free
# ports, a temp dir) and measures, for each size in --sizes:
#   (a) the ZooKeeper read ceiling: kvsync-bench zk-walk (data + children, the same concurrency
#       as kvsync, no watches), twice, the better run kept
#   (b) kvsync zk2etcd --once into an empty etcd: wall time, znodes/s, peak RSS; the etcd key
#       count is checked against the tree
# and on the largest size, with kvsync zk2etcd running live (--fullsync-interval 60s):
#   (c) RSS after the initial sync, and CPU while idle: from the end of the initial sync to the
#       end of the --idle-rounds-th periodic full sync (whole periods of 60 s + one round)
#   (d) incremental lag (ZooKeeper ack -> etcd watch event) at 200 and 1,000 changes/s
#       (kvsync-bench zk-churn), with the final ZooKeeper tree and etcd keys compared
# and writes a markdown results section into --out (default docs/benchmarks.md), replacing the
# previous one.
#
# Usage: bench/zk2etcd.sh [--sizes 10000,100000] [--lag-seconds 20] [--idle-rounds 2]
#                         [--out FILE] [--no-build] [--keep]
# Environment: BUILD_DIR (default ./build-bench), ETCD, ETCDCTL, ZK_JAVA (/usr/bin/java),
# ZK_CLASSPATH (the Debian zookeeper package's jars).
set -euo pipefail

BENCH_NAME=zk2etcd.sh
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
COMMAND_LINE="bench/$BENCH_NAME${*:+ $*}"

SIZES=10000,100000
LAG_SECONDS=20
IDLE_ROUNDS=2
LAG_RATES=(200 1000)
CONCURRENCY=64          # kvsync's default --concurrency; zk-walk uses the same
NAME_BYTES=1024
PER_SERVICE=100         # the service znode + 4 category dirs + 95 providers
FULLSYNC_INTERVAL=60s   # stricter than kvsync's default 5m
ETCD_PREFIX=/zk
ROOT_ZNODE=/dubbo
# The open-source zk2etcd, as quoted in the issue (not re-measured here).
ANCHOR_NODES=104001
ANCHOR_SECONDS=132
ANCHOR_RSS_MB=1800
ANCHOR_CPU_PCT=40
declare -A ANCHOR_LAG_P99_S=([200]=20 [1000]=100)

while [[ $# -gt 0 ]]; do
  case $1 in
    --sizes) [[ ${2:-} =~ ^[0-9]+(,[0-9]+)*$ ]] || die_usage "--sizes needs a comma-separated list of integers"
      SIZES=$2; shift 2 ;;
    --lag-seconds) is_uint "${2:-}" && [[ $2 -gt 0 ]] || die_usage "--lag-seconds needs a positive integer"
      LAG_SECONDS=$2; shift 2 ;;
    --idle-rounds) is_uint "${2:-}" && [[ $2 -gt 0 ]] || die_usage "--idle-rounds needs a positive integer"
      IDLE_ROUNDS=$2; shift 2 ;;
    *) common_arg "$@"; shift "$ARG_SHIFT" ;;
  esac
done
parse_sizes "$SIZES" "$PER_SERVICE"
mapfile -t SIZE_LIST < <(printf '%s\n' "${SIZE_LIST[@]}" | sort -n)
LARGEST=${SIZE_LIST[-1]}

require_tools "$ETCD" "$ETCDCTL" "$ZK_JAVA" /usr/bin/time awk timeout
build_binaries
setup_workdir kvsync-zkbench

now() { date +%s.%N; }
RESULTS=$WORK/results.jsonl
record() { echo "$1" >>"$RESULTS"; }

# zk_nodes PORT: the server's total znode count (srvr "Node count"), cheap at any tree size.
zk_nodes() { zk_word "$1" srvr | awk -F': ' '/^Node count/ { print $2 }'; }

# etcd_count EP: keys of the synced tree in etcd.
etcd_count() { json count "$("$BENCH" count --endpoints "$1" --prefix "$ETCD_PREFIX$ROOT_ZNODE")"; }

# fresh_etcd: replaces the destination with a new, empty etcd (the old one's data is deleted).
fresh_etcd() {
  if [[ -n ${DST_PID:-} ]]; then
    stop_pid "$DST_PID"
    rm -rf "$DST_DIR/data"
  fi
  start_etcd dst DST
}

# wait_converged EP TIMEOUT: waits until etcd holds as many keys as the tree has znodes
# (TREE_OFFSET: the server's znodes outside the tree); 0 when it did, 1 on timeout.
wait_converged() {
  local ep=$1 timeout=$2 end zc ec
  end=$(($(date +%s) + timeout))
  while true; do
    zc=$(($(zk_nodes "$ZK_PORT") - TREE_OFFSET))
    ec=$(etcd_count "$ep")
    [[ $zc == "$ec" ]] && return 0
    [[ $(date +%s) -ge $end ]] && { log "not converged: tree $zc znodes, etcd $ec keys"; return 1; }
    sleep 0.5
  done
}

proc_cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
proc_cpu_split() { awk '{ print $14, $15 }' "/proc/$1/stat"; }  # utime stime (ticks)
TICK=$(getconf CLK_TCK)
ticks_s() { calc "$1 / $TICK" 1; }
# host_ticks: "busy total" jiffies of all CPUs (/proc/stat), for the host's busy share.
host_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }
host_busy_pct() {  # host_busy_pct "BUSY0 TOTAL0" "BUSY1 TOTAL1"
  local b0 t0 b1 t1
  read -r b0 t0 <<<"$1"
  read -r b1 t1 <<<"$2"
  calc "100 * ($b1 - $b0) / ($t1 - $t0)" 0
}
proc_mem_mb() { awk -v f="$2:" '$1 == f { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

log "work dir $WORK; sizes=$SIZES lag-seconds=$LAG_SECONDS idle-rounds=$IDLE_ROUNDS"
declare -A R
for size in "${SIZE_LIST[@]}"; do
  services=$((size / PER_SERVICE))
  nodes=$((services * PER_SERVICE + 1))
  # A fresh ZooKeeper per size; the previous one (and its loader) are stopped first.
  if [[ -n ${LOADER_PID:-} ]]; then stop_pid "$LOADER_PID"; fi
  if [[ -n ${ZK_PID:-} ]]; then stop_pid "$ZK_PID"; rm -rf "$ZK_DIR/data"; fi
  start_zk "n$size" ZK
  load_dubbo_tree "$services" $((PER_SERVICE - 5)) "$NAME_BYTES" "$WORK/load-$size.log"
  out=$(head -1 "$WORK/load-$size.log")
  record "$out"
  [[ $(json nodes "$out") == $((nodes - 1)) ]] || fail "zk-load made $(json nodes "$out") znodes, expected $((nodes - 1))"
  # The tree's size is checked by each walk below; the server's other znodes (/, /zookeeper...):
  TREE_OFFSET=$(($(zk_nodes "$ZK_PORT") - nodes))
  log "loaded $nodes znodes ($services services) at $(json nodes_per_second "$out") znodes/s"

  # (a) the read ceiling, twice; the better run kept.
  best=0
  for run in 1 2; do
    z0=$(proc_cpu_ticks "$ZK_PID")
    h0=$(host_ticks)
    out=$(/usr/bin/time -f '%U %S' -o "$WORK/walk-$size-$run.time" "$BENCH" zk-walk \
      --zk-servers "$ZK_EP" --root "$ROOT_ZNODE" --concurrency "$CONCURRENCY")
    h1=$(host_ticks)
    z1=$(proc_cpu_ticks "$ZK_PID")
    record "$out"
    [[ $(json nodes "$out") == "$nodes" ]] || fail "zk-walk saw $(json nodes "$out") znodes"
    rate=$(json nodes_per_second "$out")
    if [[ $rate -gt $best ]]; then
      best=$rate
      R[$size,walk_seconds]=$(json seconds "$out")
      R[$size,walk_zk_cpu]=$(ticks_s "$((z1 - z0))")
      R[$size,walk_client_cpu]=$(awk '{ printf "%.1f", $1 + $2 }' "$WORK/walk-$size-$run.time")
      R[$size,walk_host]=$(host_busy_pct "$h0" "$h1")
    fi
    log "(a) $size: zk-walk run $run: $(json seconds "$out") s = $rate znodes/s"
  done
  R[$size,walk_rate]=$best

  # (b) kvsync --once into an empty etcd.
  fresh_etcd
  admin_addr admin
  z0=$(proc_cpu_ticks "$ZK_PID")
  e0=$(proc_cpu_ticks "$DST_PID")
  h0=$(host_ticks)
  t0=$(now)
  if ! /usr/bin/time -v -o "$WORK/once-$size.time" "$KVSYNC" zk2etcd --zk-servers "$ZK_EP" \
      --zk-prefix "$ROOT_ZNODE" --etcd-endpoints "$DST_EP" --etcd-prefix "$ETCD_PREFIX" \
      --concurrency "$CONCURRENCY" --once --admin-addr "$admin" 2>"$WORK/once-$size.log"; then
    tail -5 "$WORK/once-$size.log" >&2
    fail "kvsync zk2etcd --once failed at $size znodes"
  fi
  t1=$(now)
  h1=$(host_ticks)
  R[$size,once_zk_cpu]=$(ticks_s "$(($(proc_cpu_ticks "$ZK_PID") - z0))")
  R[$size,once_etcd_cpu]=$(ticks_s "$(($(proc_cpu_ticks "$DST_PID") - e0))")
  R[$size,once_host]=$(host_busy_pct "$h0" "$h1")
  R[$size,once_seconds]=$(calc "$t1 - $t0")
  R[$size,once_rate]=$(calc "$nodes / ${R[$size,once_seconds]}" 0)
  R[$size,once_rss]=$(awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$WORK/once-$size.time")
  R[$size,once_cpu]=$(awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 } END { printf "%.1f", u + s }' "$WORK/once-$size.time")
  R[$size,once_sys]=$(awk -F': ' '/System time/ { printf "%.1f", $2 }' "$WORK/once-$size.time")
  R[$size,sync_seconds]=$(sed -n 's/.*"full sync round done".*"seconds":\([0-9.]*\).*/\1/p' "$WORK/once-$size.log" | tail -1)
  ec=$(etcd_count "$DST_EP")
  [[ $ec == "$nodes" ]] || fail "after kvsync --once etcd holds $ec keys, the tree $nodes znodes"
  R[$size,nodes]=$nodes
  R[$size,vs_walk]=$(calc "100 * ${R[$size,once_rate]} / ${R[$size,walk_rate]}" 0)
  record "{\"step\":\"b\",\"size\":$nodes,\"seconds\":${R[$size,once_seconds]},\"znodes_per_sec\":${R[$size,once_rate]},\"rss_mb\":${R[$size,once_rss]},\"cpu_s\":${R[$size,once_cpu]}}"
  log "(b) $size: kvsync --once $nodes znodes in ${R[$size,once_seconds]} s = ${R[$size,once_rate]} znodes/s (${R[$size,vs_walk]}% of the walk), peak RSS ${R[$size,once_rss]} MB, etcd count $ec"
done

# (c) live kvsync on the largest tree (its ZooKeeper is still up): initial sync, then idle CPU.
LN=${R[$LARGEST,nodes]}
fresh_etcd
admin_addr admin
start_bg LIVE_PID "$WORK/live.log" "$KVSYNC" zk2etcd --zk-servers "$ZK_EP" --zk-prefix "$ROOT_ZNODE" \
  --etcd-endpoints "$DST_EP" --etcd-prefix "$ETCD_PREFIX" --concurrency "$CONCURRENCY" \
  --fullsync-interval "$FULLSYNC_INTERVAL" --admin-addr "$admin"
for ((i = 0; i < 1200; i++)); do
  grep -q '"full sync round done"' "$WORK/live.log" && break
  kill -0 "$LIVE_PID" 2>/dev/null || fail "kvsync zk2etcd exited: $(tail -2 "$WORK/live.log")"
  sleep 0.1
done
grep -q '"full sync round done"' "$WORK/live.log" || fail "the initial sync did not finish in 120 s"
# The idle window starts as the initial sync ends (polled every 0.1 s) and ends as the
# IDLE_ROUNDS-th periodic round ends: whole periods (interval + round), nothing changing.
read -r ut0 st0 <<<"$(proc_cpu_split "$LIVE_PID")"
t0=$(now)
rounds0=$(grep -c '"full sync round done"' "$WORK/live.log")
C_RSS_AFTER_SYNC=$(proc_mem_mb "$LIVE_PID" VmRSS)
C_HWM_AFTER_SYNC=$(proc_mem_mb "$LIVE_PID" VmHWM)
wait_converged "$DST_EP" 30 || fail "etcd does not match the tree after the initial sync"
C_INIT_SECONDS=$(sed -n 's/.*"full sync round done".*"seconds":\([0-9.]*\).*/\1/p' "$WORK/live.log" | head -1)
idle_limit=$(($(date +%s) + IDLE_ROUNDS * (${FULLSYNC_INTERVAL%s} + 120)))
while [[ $(grep -c '"full sync round done"' "$WORK/live.log") -lt $((rounds0 + IDLE_ROUNDS)) ]]; do
  [[ $(date +%s) -lt $idle_limit ]] || fail "$IDLE_ROUNDS periodic full syncs did not happen in time"
  kill -0 "$LIVE_PID" 2>/dev/null || fail "kvsync zk2etcd exited: $(tail -2 "$WORK/live.log")"
  sleep 0.1
done
read -r ut1 st1 <<<"$(proc_cpu_split "$LIVE_PID")"
t1=$(now)
ticks0=$((ut0 + st0))
ticks1=$((ut1 + st1))
C_SYS_SECONDS=$(ticks_s "$((st1 - st0))")
C_ROUNDS=$IDLE_ROUNDS
C_IDLE_SECONDS=$(calc "$t1 - $t0" 1)
C_CPU_PCT=$(calc "100 * ($ticks1 - $ticks0) / $TICK / ($t1 - $t0)" 1)
C_CPU_SECONDS=$(calc "($ticks1 - $ticks0) / $TICK" 2)
C_RSS_IDLE=$(proc_mem_mb "$LIVE_PID" VmRSS)
C_HWM_IDLE=$(proc_mem_mb "$LIVE_PID" VmHWM)
C_ROUND_SECONDS=$(sed -n 's/.*"full sync round done".*"mode":"round[12]".*"seconds":\([0-9.]*\).*/\1/p' "$WORK/live.log" | paste -sd, -)
# Derived, not measured: the same CPU per period spread over kvsync's default 5 m interval.
C_MEAN_ROUND=$(tr , '\n' <<<"$C_ROUND_SECONDS" | tail -n "$IDLE_ROUNDS" | awk '{ s += $1 } END { printf "%.1f", s / NR }')
C_CPU_PER_ROUND=$(calc "$C_CPU_SECONDS / $IDLE_ROUNDS" 1)
C_DEFAULT_PCT=$(calc "100 * $C_CPU_PER_ROUND / (300 + $C_MEAN_ROUND)" 1)
record "{\"step\":\"c\",\"size\":$LN,\"initial_sync_s\":$C_INIT_SECONDS,\"rss_after_sync_mb\":$C_RSS_AFTER_SYNC,\"hwm_after_sync_mb\":$C_HWM_AFTER_SYNC,\"idle_s\":$C_IDLE_SECONDS,\"cpu_s\":$C_CPU_SECONDS,\"cpu_pct\":$C_CPU_PCT,\"rounds\":$C_ROUNDS}"
log "(c) live on $LN znodes: initial sync $C_INIT_SECONDS s, RSS $C_RSS_AFTER_SYNC MB (peak $C_HWM_AFTER_SYNC MB); idle $C_IDLE_SECONDS s: $C_CPU_SECONDS CPU s = $C_CPU_PCT% of a core, $C_ROUNDS periodic rounds ($C_ROUND_SECONDS s)"

# (d) incremental lag against the live kvsync; etcd must match the tree again between runs
# (the churn's ephemeral znodes vanish when its session closes).
declare -A LAG
for rate in "${LAG_RATES[@]}"; do
  out=$("$BENCH" zk-churn --zk-servers "$ZK_EP" --root "$ROOT_ZNODE" --etcd-endpoints "$DST_EP" \
    --etcd-prefix "$ETCD_PREFIX" --rate "$rate" --duration "$LAG_SECONDS" --settle 10)
  record "$out"
  for f in changes creates deletes sets failed send_rate max_send_late_ms matched superseded \
      unmatched p50_ms p99_ms max_ms create_p99_ms delete_p99_ms set_p99_ms zk_p50_ms zk_p99_ms \
      zk_nodes etcd_keys missing stale extra example_missing example_stale example_extra; do
    LAG[$rate,$f]=$(json "$f" "$out")
  done
  log "(d) $rate changes/s: $out"
  if ! wait_converged "$DST_EP" 60; then
    LAG[$rate,converged]=no
  else
    LAG[$rate,converged]=yes
  fi
done
kill -0 "$LIVE_PID" 2>/dev/null || fail "kvsync zk2etcd died during the lag runs: $(tail -2 "$WORK/live.log")"
D_RSS=$(proc_mem_mb "$LIVE_PID" VmHWM)
stop_pid "$LIVE_PID"
grep -E '"level":"(warn|error)"' "$WORK/live.log" | sed 's/"ts":"[^"]*",//' | sort | uniq -c | sort -rn \
  >"$WORK/live-warnings.txt" || true

# Report.
host_facts
ZK_VERSION=$(zk_word "$ZK_PORT" srvr | awk -F': ' '/^Zookeeper version/ { print $2 }' | cut -d- -f1)
JAVA_VERSION=$("$ZK_JAVA" -version 2>&1 | head -1 | sed 's/"//g')
ANCHOR_RATE=$(calc "$ANCHOR_NODES / $ANCHOR_SECONDS" 0)
L=$LARGEST
L_SPEEDUP=$(calc "${R[$L,once_rate]} / $ANCHOR_RATE" 1)
TOP=${LAG_RATES[-1]}
lag_ok() {  # lag_ok RATE: zero unmatched, missing, stale, extra
  [[ ${LAG[$1,unmatched]} == 0 && ${LAG[$1,missing]} == 0 && ${LAG[$1,stale]} == 0 && ${LAG[$1,extra]} == 0 ]]
}
setcell() {  # setcell RATE: the final comparison
  local r=$1
  if lag_ok "$r"; then
    echo "0 / 0 / 0 / 0"
  else
    echo "**${LAG[$r,unmatched]} / ${LAG[$r,missing]} / ${LAG[$r,stale]} / ${LAG[$r,extra]}**"
  fi
}
RSS_MAX=$(maximum "${R[$L,once_rss]}" "$C_HWM_AFTER_SYNC")

SECTION=$WORK/section.md
{
  echo "<!-- zk2etcd-results:begin (generated by bench/zk2etcd.sh; edits here are overwritten) -->"
  echo "### Results: kvsync zk2etcd"
  echo
  echo "- Command: \`$COMMAND_LINE\`"
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Machine: $(nproc) CPUs ($CPU), $MEM_GB GiB RAM, $(uname -sr); ZooKeeper, etcd, kvsync"
  echo "  and the load generators share it"
  echo "- ZooKeeper $ZK_VERSION standalone ($JAVA_VERSION, \`-Xmx1024m\`, no fsync); etcd $ETCD_VERSION single member;"
  echo "  kvsync at $GIT_REV, \`--concurrency $CONCURRENCY\` (zk-walk the same), other flags default"
  echo "- Trees: \`$ROOT_ZNODE/<service>/{providers,consumers,configurators,routers}\`, $((PER_SERVICE - 5)) ephemeral providers"
  echo "  per service with ${NAME_BYTES}-byte URL-encoded names (held by a \`zk-load --ephemeral\` session), $PER_SERVICE znodes per service"
  echo "- Anchor: the open-source zk2etcd's figures as quoted in the issue (not re-measured here):"
  echo "  $(fmt $ANCHOR_NODES) znodes in $ANCHOR_SECONDS s ($(fmt "$ANCHOR_RATE") znodes/s), peak RSS ≈1.8 GB,"
  echo "  create propagation p99 ≈20 s at 200 and ≈100 s at 1,000 changes/s, ≈40% of a core idle"
  echo
  echo "| Measurement | kvsync | Anchor (quoted) | Ceiling | kvsync vs anchor | kvsync ÷ ceiling |"
  echo "|---|---|---|---|---|---|"
  for s in "${SIZE_LIST[@]}"; do
    n=${R[$s,nodes]}
    anchor_cell="" ratio_cell=""
    if [[ $s == "$L" ]]; then
      anchor_cell="$(fmt "$ANCHOR_RATE") ($(fmt $ANCHOR_NODES) znodes in $ANCHOR_SECONDS s)"
      ratio_cell="${L_SPEEDUP}× (znodes/s)"
    fi
    echo "| (a,b) Full sync of $(fmt "$n") znodes into empty etcd: znodes/s (wall s) | $(fmt "${R[$s,once_rate]}") (${R[$s,once_seconds]} s) | $anchor_cell | $(fmt "${R[$s,walk_rate]}") (${R[$s,walk_seconds]} s, zk-walk) | $ratio_cell | ${R[$s,vs_walk]}% |"
    echo "| (a,b) CPU s: ZooKeeper server / etcd / client (sys part); host busy % of $(nproc) CPUs — walk vs kvsync | walk: ${R[$s,walk_zk_cpu]} / – / ${R[$s,walk_client_cpu]}, ${R[$s,walk_host]}%; kvsync: ${R[$s,once_zk_cpu]} / ${R[$s,once_etcd_cpu]} / ${R[$s,once_cpu]} (${R[$s,once_sys]}), ${R[$s,once_host]}% | | | | |"
    echo "| (b) Peak RSS of that full sync, MB (CPU s) | ${R[$s,once_rss]} (${R[$s,once_cpu]} s) | $([[ $s == "$L" ]] && echo "≈ $(fmt $ANCHOR_RSS_MB)") | | $([[ $s == "$L" ]] && echo "$(calc "$ANCHOR_RSS_MB / ${R[$s,once_rss]}" 1)× less") | |"
  done
  echo "| (c) Live kvsync on $(fmt "$LN") znodes: initial sync s; RSS after it, MB (peak) | $C_INIT_SECONDS s; $C_RSS_AFTER_SYNC MB ($C_HWM_AFTER_SYNC MB) | | | | |"
  echo "| (c) Idle, \`--fullsync-interval $FULLSYNC_INTERVAL\`: % of a core over $C_IDLE_SECONDS s ($C_ROUNDS periodic rounds: $C_ROUND_SECONDS s); RSS after, MB (peak) | $C_CPU_PCT% ($C_CPU_SECONDS CPU s, $C_SYS_SECONDS s sys); $C_RSS_IDLE MB ($C_HWM_IDLE MB) | ≈ $ANCHOR_CPU_PCT% | | $(calc "$ANCHOR_CPU_PCT / ($C_CPU_PCT > 0 ? $C_CPU_PCT : 0.1)" 0)× less | |"
  for r in "${LAG_RATES[@]}"; do
    echo "| (d) Lag at $(fmt "$r") changes/s for $LAG_SECONDS s (ack → etcd event), p50 / p99 / max ms | ${LAG[$r,p50_ms]} / ${LAG[$r,p99_ms]} / ${LAG[$r,max_ms]} | p99 ≈ $(fmt $((ANCHOR_LAG_P99_S[$r] * 1000))) (creates) | | $(calc "${ANCHOR_LAG_P99_S[$r]} * 1000 / (${LAG[$r,p99_ms]} > 0 ? ${LAG[$r,p99_ms]} : 0.1)" 0)× lower p99 | |"
    echo "| (d) … p99 by kind: create / delete / set ms; ZooKeeper ack p50 / p99 ms | ${LAG[$r,create_p99_ms]} / ${LAG[$r,delete_p99_ms]} / ${LAG[$r,set_p99_ms]}; ${LAG[$r,zk_p50_ms]} / ${LAG[$r,zk_p99_ms]} | | | | |"
    echo "| (d) … changes (creates / deletes / sets), sent/s; unmatched / missing / stale / extra at the end | $(fmt "${LAG[$r,changes]}") ($(fmt "${LAG[$r,creates]}") / $(fmt "${LAG[$r,deletes]}") / $(fmt "${LAG[$r,sets]}")), $(fmt "${LAG[$r,send_rate]}")/s; $(setcell "$r") | | | | |"
  done
  echo
  echo "Targets (from the issue):"
  echo
  if [[ $L -ge 100000 ]]; then
    echo "- Full sync of $(fmt "${R[$L,nodes]}") znodes ≥ 10× the anchor (≤ 13 s): ${R[$L,once_seconds]} s, ${L_SPEEDUP}× — $(verdict eval "le ${R[$L,once_seconds]} 13 && ge ${R[$L,once_rate]} $((10 * ANCHOR_RATE))")"
  else
    echo "- Full sync of 100k znodes ≥ 10× the anchor (≤ 13 s): not measured (largest size in this run: $(fmt "${R[$L,nodes]}") znodes, ${R[$L,once_seconds]} s)"
  fi
  echo "- Full sync ≥ 60% of the walk ceiling: ${R[$L,vs_walk]}% — $(verdict ge "${R[$L,vs_walk]}" 60)"
  echo "- Peak RSS ≤ 300 MB at 100k znodes: $RSS_MAX MB (\`--once\` ${R[$L,once_rss]} MB, live after the initial sync $C_HWM_AFTER_SYNC MB) — $(verdict le "$RSS_MAX" 300)"
  echo "- Lag p99 ≤ 200 ms at $(fmt "$TOP") changes/s with no stale or missing keys: ${LAG[$TOP,p99_ms]} ms, $(setcell "$TOP") unmatched / missing / stale / extra — $(verdict eval "le ${LAG[$TOP,p99_ms]} 200 && lag_ok $TOP")"
  echo "- Idle periodic full sync ≤ 10% of a core: $C_CPU_PCT% at \`--fullsync-interval $FULLSYNC_INTERVAL\` — $(verdict le "$C_CPU_PCT" 10)"
  echo "  (derived, not measured: $C_CPU_PER_ROUND CPU s per period at the default 5 m interval ≈ $C_DEFAULT_PCT%)"
  echo
  echo "Notes: kvsync's full-sync time is the \`--once\` process's wall time (start-up, etcd"
  echo "snapshot and ownership marks included); its own \"full sync round done\" line says"
  echo "$(for s in "${SIZE_LIST[@]}"; do printf '%s s at %s znodes; ' "${R[$s,sync_seconds]}" "$(fmt "${R[$s,nodes]}")"; done | sed 's/; $//')."
  echo "CPU rows: the ZooKeeper server's and etcd's CPU from /proc/<pid>/stat over the walk or the"
  echo "\`--once\` run, the client's from /usr/bin/time; host busy % counts every process on the machine"
  echo "(including other work sharing it) over the same window."
  echo "The walk ceiling reads every znode's data and lists every persistent znode, without watches,"
  echo "with the same number of reads in flight. Lag runs use the $(fmt "$LN")-znode tree with kvsync"
  echo "running live (its periodic full sync included); peak RSS of the live process after them: $D_RSS MB."
  echo "<!-- zk2etcd-results:end -->"
} >"$SECTION"

if [[ -s $WORK/live-warnings.txt ]]; then
  log "warnings/errors of the live kvsync (count, line):"
  cut -c1-300 "$WORK/live-warnings.txt" >&2
fi
publish_section zk2etcd-results "$SECTION"
OK=1
