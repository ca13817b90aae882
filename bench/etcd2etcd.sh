#!/usr/bin/env bash
# kvsync etcd2etcd against `etcdctl make-mirror` and against the ideal-copier ceiling, on the
# same data, on this machine. Starts its own single-member etcd servers (loopback, free ports,
# a temp dir) and measures:
#   (a) kvsync --once full copy into an empty destination: wall time, keys/s, peak RSS
#   (b) make-mirror full copy (capped; the rate is extrapolated to all keys)
#   (c) the ceilings: kvsync-bench ideal-copy and the destination's raw ingest rate
#   (d) live replication lag at 1,000 and 5,000 puts/s, kvsync vs make-mirror
#   (e) full copy through a 30 ms RTT link (kvsync-bench delay-proxy, 15 ms each way), at
#       --wan-keys (default --keys: large enough that a few fixed round trips do not dominate)
#       and at 10,000 keys
#   (f) restart catch-up: kill -9 kvsync, 1,000 source changes, restart, time to caught up
#   (g) kvsync --once at --rss-keys (default 10 x --keys; 0 skips): keys/s and peak RSS
#   (h) live lag through the 30 ms RTT link at 1,000 / 3,000 / 6,000 puts/s, kvsync vs
#       make-mirror, each run beside the source (destination behind the link) and beside the
#       destination (source behind the link)
# and writes a markdown results section into --out (default docs/benchmarks.md), replacing
# the previous one.
#
# Usage: bench/etcd2etcd.sh [--keys N] [--value-size 256] [--lag-seconds 20] [--out FILE]
#                           [--rss-keys N] [--wan-keys N] [--no-build] [--keep]
# Environment: BUILD_DIR (default ./build-bench), ETCD (default etcd), ETCDCTL (etcdctl).
set -euo pipefail

BENCH_NAME=etcd2etcd.sh
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
COMMAND_LINE="bench/$BENCH_NAME${*:+ $*}"

KEYS=100000
VALUE_SIZE=256
LAG_SECONDS=20
RSS_KEYS=""
MM_MAX_KEYS=20000      # make-mirror full copy: stop after this many keys...
MM_MAX_SECONDS=60      # ...or this many seconds, and extrapolate
WAN_KEYS=""
WAN_SMALL_KEYS=10000
WAN_DELAY_MS=15
RESTART_CHANGES=1000
REPEAT=3               # runs of (a) and (c); medians reported (odd, so a median is one run's value)
LAG_RATES=(1000 5000)
WAN_LAG_RATES=(1000 3000 6000)
WAN_LAG_GOAL_RATE=5000  # p99 <= 250 ms at this rate (or the nearest measured above it)

while [[ $# -gt 0 ]]; do
  case $1 in
    --keys) is_uint "${2:-}" && [[ $2 -gt 0 ]] || die_usage "--keys needs a positive integer"
      KEYS=$2; shift 2 ;;
    --value-size) is_uint "${2:-}" || die_usage "--value-size needs an integer"
      VALUE_SIZE=$2; shift 2 ;;
    --lag-seconds) is_uint "${2:-}" && [[ $2 -gt 0 ]] || die_usage "--lag-seconds needs a positive integer"
      LAG_SECONDS=$2; shift 2 ;;
    --rss-keys) is_uint "${2:-}" || die_usage "--rss-keys needs an integer"
      RSS_KEYS=$2; shift 2 ;;
    --wan-keys) is_uint "${2:-}" && [[ $2 -gt 0 ]] || die_usage "--wan-keys needs a positive integer"
      WAN_KEYS=$2; shift 2 ;;
    *) common_arg "$@"; shift "$ARG_SHIFT" ;;
  esac
done

RSS_KEYS=${RSS_KEYS:-$((10 * KEYS))}
WAN_KEYS=${WAN_KEYS:-$KEYS}

require_tools "$ETCD" "$ETCDCTL" /usr/bin/time awk
build_binaries
setup_workdir kvsync-bench

now() { date +%s.%N; }

# fresh_dst: replaces the destination with a new, empty etcd (the old one's data is deleted,
# its log kept).
fresh_dst() {
  if [[ -n ${DST_PID:-} ]]; then
    stop_pid "$DST_PID"
    rm -rf "$DST_DIR/data"
  fi
  start_etcd dst DST
}

vm_hwm_mb() {  # peak RSS of a running process, MB
  awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"
}

RESULTS=$WORK/results.jsonl
record() { echo "$1" >>"$RESULTS"; }

# make_mirror_copy PREFIX SRC DST TARGET_KEYS MAX_SECONDS COUNT_EP: runs make-mirror until the
# destination (counted at COUNT_EP) holds TARGET_KEYS keys or MAX_SECONDS pass; sets MM_KEYS,
# MM_SECONDS, MM_RSS_MB.
make_mirror_copy() {
  local prefix=$1 src=$2 dst=$3 target=$4 max=$5 count_ep=$6 t0 t1 out pid
  t0=$(now)
  start_bg pid "$WORK/make-mirror-$ETCD_SEQ.log" "$ETCDCTL" --endpoints "$src" make-mirror --prefix "$prefix" "$dst"
  out=$("$BENCH" wait --endpoints "$count_ep" --prefix "$prefix" --count "$target" --timeout "$max" --interval-ms 100 || true)
  t1=$(now)
  MM_RSS_MB=$(vm_hwm_mb "$pid")
  stop_pid "$pid"
  MM_KEYS=$(json count "$out")
  MM_SECONDS=$(calc "$t1 - $t0")
}

# kvsync_once PREFIX SRC DST TAG: kvsync etcd2etcd --once; sets KV_SECONDS, KV_RSS_MB.
kvsync_once() {
  local prefix=$1 src=$2 dst=$3 tag=$4 t0 t1 admin
  admin_addr admin
  t0=$(now)
  if ! /usr/bin/time -f %M -o "$WORK/$tag.rss" "$KVSYNC" etcd2etcd --src-endpoints "$src" \
      --dst-endpoints "$dst" --prefix "$prefix" --once --admin-addr "$admin" 2>"$WORK/$tag.log"; then
    echo "$BENCH_NAME: error: kvsync --once failed ($tag); last lines of its log:" >&2
    tail -5 "$WORK/$tag.log" >&2
    exit 1
  fi
  t1=$(now)
  KV_SECONDS=$(calc "$t1 - $t0")
  KV_RSS_MB=$(awk '{ v = $1 } END { printf "%.1f", v / 1024 }' "$WORK/$tag.rss")
}

# compare_prefix PREFIX SRC DST: fails the run when the copy differs from the source.
compare_prefix() {
  local out
  if ! out=$("$BENCH" compare --src "$2" --dst "$3" --prefix "$1"); then
    fail "destination differs from source under $1: $out"
  fi
}

log "work dir $WORK; keys=$KEYS value-size=$VALUE_SIZE lag-seconds=$LAG_SECONDS"
start_etcd src SRC
fresh_dst

# Source data: N keys under /bench/.
out=$("$BENCH" load --endpoints "$SRC_EP" --prefix /bench/ --keys "$KEYS" --value-size "$VALUE_SIZE")
record "$out"
log "loaded $KEYS keys into the source at $(json keys_per_sec "$out") keys/s"

# (a) kvsync --once full copy; the ideal copier and the raw ingest (c) run interleaved with it,
# each on a fresh destination, REPEAT times; medians are reported (single runs vary by ~10%).
A_TIMES=() A_RSSES=() C_IDEAL_RATES=() C_IDEAL_TIMES=() C_INGEST_RATES=()
for ((run = 1; run <= REPEAT; run++)); do
  [[ $run == 1 ]] || fresh_dst
  kvsync_once /bench/ "$SRC_EP" "$DST_EP" full-copy-$run
  compare_prefix /bench/ "$SRC_EP" "$DST_EP"
  A_TIMES+=("$KV_SECONDS")
  A_RSSES+=("$KV_RSS_MB")
  record "{\"step\":\"a\",\"run\":$run,\"seconds\":$KV_SECONDS,\"keys_per_sec\":$(calc "$KEYS / $KV_SECONDS" 0),\"rss_mb\":$KV_RSS_MB}"
  log "(a) kvsync --once run $run: $KEYS keys in $KV_SECONDS s = $(calc "$KEYS / $KV_SECONDS" 0) keys/s, peak RSS $KV_RSS_MB MB"
  fresh_dst
  out=$("$BENCH" ideal-copy --src "$SRC_EP" --dst "$DST_EP" --prefix /bench/)
  record "$out"
  C_IDEAL_RATES+=("$(json keys_per_sec "$out")")
  C_IDEAL_TIMES+=("$(json seconds "$out")")
  fresh_dst
  out=$("$BENCH" ingest --endpoints "$DST_EP" --prefix /bench/ --keys "$KEYS" --value-size "$VALUE_SIZE")
  record "$out"
  C_INGEST_RATES+=("$(json keys_per_sec "$out")")
  log "(c) run $run: ideal copier ${C_IDEAL_RATES[-1]} keys/s; destination raw ingest ${C_INGEST_RATES[-1]} keys/s"
done
A_SECONDS=$(median "${A_TIMES[@]}")
A_RSS=$(maximum "${A_RSSES[@]}")
A_RATE=$(calc "$KEYS / $A_SECONDS" 0)
C_IDEAL_RATE=$(median "${C_IDEAL_RATES[@]}")
C_IDEAL_SECONDS=$(median "${C_IDEAL_TIMES[@]}")
C_INGEST_RATE=$(median "${C_INGEST_RATES[@]}")
log "(a) median $A_RATE keys/s; (c) median ideal $C_IDEAL_RATE keys/s, ingest $C_INGEST_RATE keys/s"

# (b) make-mirror full copy, capped.
fresh_dst
MM_TARGET=$((KEYS < MM_MAX_KEYS ? KEYS : MM_MAX_KEYS))
make_mirror_copy /bench/ "$SRC_EP" "$DST_EP" "$MM_TARGET" "$MM_MAX_SECONDS" "$DST_EP"
B_KEYS=$MM_KEYS
B_SECONDS=$MM_SECONDS
B_RSS=$MM_RSS_MB
B_RATE=$(calc "$B_KEYS / $B_SECONDS" 0)
B_EXTRAPOLATED=$([[ $B_KEYS -lt $KEYS ]] && echo 1 || echo 0)
B_FULL_SECONDS=$(calc "$KEYS / ($B_KEYS > 0 ? $B_KEYS / $B_SECONDS : 1e-9)" 1)
record "{\"step\":\"b\",\"keys\":$B_KEYS,\"seconds\":$B_SECONDS,\"keys_per_sec\":$B_RATE,\"rss_mb\":$B_RSS}"
log "(b) make-mirror: $B_KEYS keys in $B_SECONDS s = $B_RATE keys/s, peak RSS $B_RSS MB$([[ $B_EXTRAPOLATED == 1 ]] && echo " (capped; $KEYS keys would take ~$B_FULL_SECONDS s, extrapolated)")"

# lag_run TOOL SYNCER_SRC SYNCER_DST PREFIX RATE LOG: runs the syncer under test (kvsync or
# make-mirror) between the given endpoints and the lag load generator against the clusters
# directly; sets LAG_OUT (the generator's JSON line).
lag_run() {
  local tool=$1 syncer_src=$2 syncer_dst=$3 prefix=$4 rate=$5 log_file=$6 admin
  if [[ $tool == kvsync ]]; then
    admin_addr admin
    start_bg syncer "$log_file" "$KVSYNC" etcd2etcd --src-endpoints "$syncer_src" \
      --dst-endpoints "$syncer_dst" --prefix "$prefix" --admin-addr "$admin"
  else
    start_bg syncer "$log_file" "$ETCDCTL" --endpoints "$syncer_src" make-mirror \
      --prefix "$prefix" "$syncer_dst"
  fi
  LAG_OUT=$("$BENCH" lag --src "$SRC_EP" --dst "$DST_EP" --prefix "$prefix" --rate "$rate" \
    --seconds "$LAG_SECONDS" --value-size "$VALUE_SIZE")
  stop_pid "$syncer"
}

# (d) live lag.
declare -A LAG
for rate in "${LAG_RATES[@]}"; do
  for tool in kvsync make-mirror; do
    fresh_dst
    prefix=/lag-$tool-$rate/
    lag_run "$tool" "$SRC_EP" "$DST_EP" "$prefix" "$rate" "$WORK/lag-$tool-$rate.log"
    out=$LAG_OUT
    record "$out"
    for f in p50_ms p99_ms max_ms missing sent send_rate lower_bound; do
      LAG[$tool,$rate,$f]=$(json "$f" "$out")
    done
    log "(d) $tool at $rate puts/s: $out"
  done
done

# (e) full copy through a 30 ms RTT link (delay proxy between the syncer and the destination).
# start_proxy [UPSTREAM]: a delay proxy in front of UPSTREAM (default: the current
# destination); sets PROXY_EP, PROXY_PID.
start_proxy() {
  local port i upstream=${1:-$DST_EP}
  free_port port
  start_bg PROXY_PID "$WORK/proxy-$ETCD_SEQ-$port.log" "$BENCH" delay-proxy --listen "127.0.0.1:$port" \
    --upstream "$upstream" --delay-ms "$WAN_DELAY_MS"
  for ((i = 0; i < 100; i++)); do
    grep -q listen_port "$WORK/proxy-$ETCD_SEQ-$port.log" 2>/dev/null && break
    sleep 0.05
  done
  PROXY_EP=127.0.0.1:$port
}
# wan_copy PREFIX KEYS TAG: kvsync --once and the ideal copier through the link; sets
# WAN_KV_RATE, WAN_KV_SYNC_SECONDS (the full sync itself, from kvsync's log), WAN_IDEAL_RATE.
wan_copy() {
  local prefix=$1 keys=$2 tag=$3 out
  "$BENCH" load --endpoints "$SRC_EP" --prefix "$prefix" --keys "$keys" --value-size "$VALUE_SIZE" >/dev/null
  fresh_dst
  start_proxy
  kvsync_once "$prefix" "$SRC_EP" "$PROXY_EP" "$tag"
  compare_prefix "$prefix" "$SRC_EP" "$DST_EP"
  WAN_KV_RATE=$(calc "$keys / $KV_SECONDS" 0)
  WAN_KV_SYNC_SECONDS=$(grep 'full sync done' "$WORK/$tag.log" | grep -o '"seconds":[0-9.e+-]*' | cut -d: -f2 | head -1)
  stop_pid "$PROXY_PID"
  fresh_dst
  start_proxy
  out=$("$BENCH" ideal-copy --src "$SRC_EP" --dst "$PROXY_EP" --prefix "$prefix")
  record "$out"
  WAN_IDEAL_RATE=$(json keys_per_sec "$out")
  stop_pid "$PROXY_PID"
}
wan_copy /wan/ "$WAN_KEYS" wan-kvsync
E_KV_RATE=$WAN_KV_RATE
E_KV_SYNC_SECONDS=$WAN_KV_SYNC_SECONDS
E_IDEAL_RATE=$WAN_IDEAL_RATE
wan_copy /wan-small/ "$WAN_SMALL_KEYS" wan-small-kvsync
E2_KV_RATE=$WAN_KV_RATE
E2_IDEAL_RATE=$WAN_IDEAL_RATE
fresh_dst
start_proxy
make_mirror_copy /wan/ "$SRC_EP" "$PROXY_EP" "$WAN_KEYS" "$MM_MAX_SECONDS" "$DST_EP"
stop_pid "$PROXY_PID"
E_MM_KEYS=$MM_KEYS
E_MM_SECONDS=$MM_SECONDS
E_MM_RATE=$(calc "$E_MM_KEYS / $E_MM_SECONDS" 1)
record "{\"step\":\"e\",\"kvsync_keys_per_sec\":$E_KV_RATE,\"ideal_keys_per_sec\":$E_IDEAL_RATE,\"small_kvsync_keys_per_sec\":$E2_KV_RATE,\"small_ideal_keys_per_sec\":$E2_IDEAL_RATE,\"make_mirror_keys\":$E_MM_KEYS,\"make_mirror_seconds\":$E_MM_SECONDS}"
log "(e) 30 ms RTT, $WAN_KEYS keys: kvsync $E_KV_RATE keys/s (full sync ${E_KV_SYNC_SECONDS}s), ideal $E_IDEAL_RATE keys/s; $WAN_SMALL_KEYS keys: kvsync $E2_KV_RATE, ideal $E2_IDEAL_RATE; make-mirror $E_MM_KEYS keys in $E_MM_SECONDS s = $E_MM_RATE keys/s"

# (h) live lag through the link, in both placements. Beside the source: the syncer reads the
# source directly and writes through the link; beside the destination: it watches through
# the link and writes directly. The load generator always talks to both clusters directly.
declare -A WLAG
for placement in source destination; do
  for rate in "${WAN_LAG_RATES[@]}"; do
    for tool in kvsync make-mirror; do
      fresh_dst
      prefix=/wlag-$tool-$placement-$rate/
      if [[ $placement == source ]]; then
        start_proxy "$DST_EP"
        syncer_src=$SRC_EP syncer_dst=$PROXY_EP
      else
        start_proxy "$SRC_EP"
        syncer_src=$PROXY_EP syncer_dst=$DST_EP
      fi
      lag_run "$tool" "$syncer_src" "$syncer_dst" "$prefix" "$rate" \
        "$WORK/wlag-$tool-$placement-$rate.log"
      out=$LAG_OUT
      stop_pid "$PROXY_PID"
      record "$(sed "s/^{/{\"step\":\"h\",\"placement\":\"$placement\",\"tool\":\"$tool\",/" <<<"$out")"
      for f in p50_ms p99_ms max_ms missing sent send_rate lower_bound; do
        WLAG[$tool,$placement,$rate,$f]=$(json "$f" "$out")
      done
      log "(h) $tool beside the $placement at $rate puts/s through ${WAN_DELAY_MS}x2 ms: $out"
    done
  done
done

# (f) restart catch-up.
fresh_dst
admin_addr admin
start_bg syncer "$WORK/restart-1.log" "$KVSYNC" etcd2etcd --src-endpoints "$SRC_EP" \
  --dst-endpoints "$DST_EP" --prefix /bench/ --admin-addr "$admin"
"$ETCDCTL" --endpoints "$SRC_EP" put /bench/~marker-synced "$(date +%s%N)" >/dev/null
"$BENCH" wait --endpoints "$DST_EP" --prefix /bench/ --count $((KEYS + 1)) --key /bench/~marker-synced \
  --timeout 300 --interval-ms 200 >/dev/null
# Let a checkpoint cover the marker before the crash, as in a steady state.
sleep 1
stop_pid "$syncer" KILL
"$BENCH" load --endpoints "$SRC_EP" --prefix /bench/ --keys "$RESTART_CHANGES" --txn-ops 1 \
  --value-size "$VALUE_SIZE" >/dev/null
marker=$(date +%s%N)
"$ETCDCTL" --endpoints "$SRC_EP" put /bench/~marker-restart "$marker" >/dev/null
admin_addr admin
t0=$(now)
start_bg syncer "$WORK/restart-2.log" "$KVSYNC" etcd2etcd --src-endpoints "$SRC_EP" \
  --dst-endpoints "$DST_EP" --prefix /bench/ --admin-addr "$admin"
"$BENCH" wait --endpoints "$DST_EP" --key /bench/~marker-restart --value "$marker" --timeout 120 \
  --interval-ms 10 >/dev/null
t1=$(now)
F_SECONDS=$(calc "$t1 - $t0")
compare_prefix /bench/ "$SRC_EP" "$DST_EP"
stop_pid "$syncer"
if grep -q '"fast path chosen"' "$WORK/restart-2.log"; then
  F_PATH="resumed from its checkpoint"
else
  F_PATH="did NOT resume from its checkpoint (see the log)"
fi
record "{\"step\":\"f\",\"catch_up_seconds\":$F_SECONDS}"
log "(f) restart after kill -9 and $RESTART_CHANGES changes: caught up in $F_SECONDS s; $F_PATH"

# (g) full copy at --rss-keys: throughput and peak RSS at scale.
G_RSS=""
if [[ $RSS_KEYS -gt 0 ]]; then
  out=$("$BENCH" load --endpoints "$SRC_EP" --prefix /rss/ --keys "$RSS_KEYS" --value-size "$VALUE_SIZE")
  log "loaded $RSS_KEYS keys under /rss/ at $(json keys_per_sec "$out") keys/s"
  fresh_dst
  kvsync_once /rss/ "$SRC_EP" "$DST_EP" rss-copy
  compare_prefix /rss/ "$SRC_EP" "$DST_EP"
  G_RSS=$KV_RSS_MB
  G_SECONDS=$KV_SECONDS
  G_RATE=$(calc "$RSS_KEYS / $G_SECONDS" 0)
  record "{\"step\":\"g\",\"keys\":$RSS_KEYS,\"seconds\":$G_SECONDS,\"keys_per_sec\":$G_RATE,\"rss_mb\":$G_RSS}"
  log "(g) kvsync --once $RSS_KEYS keys: $G_SECONDS s = $G_RATE keys/s, peak RSS $G_RSS MB"
fi

# Report.
ratio() { awk "BEGIN { if ($2 > 0) printf \"%.${3:-1}f\", $1 / $2; else print \"n/a\" }"; }
lagcell() {  # lagcell TOOL RATE: "p50 / p99 / max ms", with missing events flagged
  local t=$1 r=$2 cell
  cell="$(fmt "${LAG[$t,$r,p50_ms]}") / $(fmt "${LAG[$t,$r,p99_ms]}") / $(fmt "${LAG[$t,$r,max_ms]}")"
  if [[ ${LAG[$t,$r,missing]} != 0 ]]; then
    cell="≥ $cell ($(fmt "${LAG[$t,$r,missing]}") of $(fmt "${LAG[$t,$r,sent]}") never arrived)"
  fi
  echo "$cell"
}
wlagcell() {  # wlagcell TOOL PLACEMENT RATE: as lagcell, for (h)
  local t=$1 p=$2 r=$3 cell
  cell="$(fmt "${WLAG[$t,$p,$r,p50_ms]}") / $(fmt "${WLAG[$t,$p,$r,p99_ms]}") / $(fmt "${WLAG[$t,$p,$r,max_ms]}")"
  if [[ ${WLAG[$t,$p,$r,missing]} != 0 ]]; then
    cell="≥ $cell ($(fmt "${WLAG[$t,$p,$r,missing]}") of $(fmt "${WLAG[$t,$p,$r,sent]}") never arrived)"
  fi
  echo "$cell"
}
# The measured rate the (h) goal is judged at: the lowest one at or above WAN_LAG_GOAL_RATE.
WAN_GOAL_AT=${WAN_LAG_RATES[-1]}
for r in "${WAN_LAG_RATES[@]}"; do
  if [[ $r -ge $WAN_LAG_GOAL_RATE && $r -lt $WAN_GOAL_AT ]]; then WAN_GOAL_AT=$r; fi
done

MM_NOTE=""
[[ $B_EXTRAPOLATED == 1 ]] && MM_NOTE=" (extrapolated from $(fmt "$B_KEYS") keys in ${B_SECONDS} s)"
E_MM_NOTE=""
[[ $E_MM_KEYS -lt $WAN_KEYS ]] && E_MM_NOTE=" (extrapolated from $(fmt "$E_MM_KEYS") keys in ${E_MM_SECONDS} s)"
A_VS_MM=$(ratio "$A_RATE" "$B_RATE")
A_VS_IDEAL=$(awk "BEGIN { printf \"%.0f\", 100 * $A_RATE / $C_IDEAL_RATE }")
E_VS_MM=$(ratio "$E_KV_RATE" "$E_MM_RATE" 0)
E_VS_IDEAL=$(awk "BEGIN { printf \"%.0f\", 100 * $E_KV_RATE / $E_IDEAL_RATE }")
E2_VS_IDEAL=$(awk "BEGIN { printf \"%.0f\", 100 * $E2_KV_RATE / $E2_IDEAL_RATE }")
LAG_TOP=${LAG_RATES[-1]}
host_facts

SECTION=$WORK/section.md
{
  echo "<!-- etcd2etcd-results:begin (generated by bench/etcd2etcd.sh; edits here are overwritten) -->"
  echo "## Results"
  echo
  echo "- Command: \`$COMMAND_LINE\`"
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Machine: $(nproc) CPUs ($CPU), $MEM_GB GiB RAM, $(uname -sr); both etcd servers, the"
  echo "  syncer and the load generator share it"
  echo "- etcd $ETCD_VERSION (single member each, \`--quota-backend-bytes 8589934592\`, no auto-compaction);"
  echo "  etcdctl $("$ETCDCTL" version | awk '/etcdctl version/ { print $3 }'); kvsync at $GIT_REV"
  echo "- Data: $(fmt "$KEYS") keys × $VALUE_SIZE B values; kvsync with default flags (\`--inflight 16 --page-size 10000\`);"
  echo "  (a) and (c) are medians of $REPEAT runs (peak RSS: the largest), each into a fresh destination"
  echo
  echo "| Measurement | kvsync | make-mirror | Ceiling | kvsync ÷ make-mirror | kvsync ÷ ceiling |"
  echo "|---|---|---|---|---|---|"
  echo "| (a,b,c) Full copy of $(fmt "$KEYS") keys, keys/s | $(fmt "$A_RATE") | $(fmt "$B_RATE")$MM_NOTE | $(fmt "$C_IDEAL_RATE") (ideal copier) | ${A_VS_MM}× | ${A_VS_IDEAL}% |"
  echo "| (a,b,c) Full copy wall time, s | $A_SECONDS | ≈ $B_FULL_SECONDS$([[ $B_EXTRAPOLATED == 1 ]] && echo " (extrapolated)") | $C_IDEAL_SECONDS | | |"
  echo "| (a,b) Peak RSS during the full copy, MB | $A_RSS | $B_RSS$([[ $B_EXTRAPOLATED == 1 ]] && echo " (at $(fmt "$B_KEYS") keys)") | | | |"
  echo "| (c) Destination raw ingest from memory, keys/s | | | $(fmt "$C_INGEST_RATE") | | $(awk "BEGIN { printf \"%.0f\", 100 * $A_RATE / $C_INGEST_RATE }")% |"
  for r in "${LAG_RATES[@]}"; do
    echo "| (d) Live lag at $(fmt "$r") puts/s for $LAG_SECONDS s, p50 / p99 / max ms | $(lagcell kvsync "$r") | $(lagcell make-mirror "$r") | | | |"
  done
  echo "| (e) Full copy of $(fmt "$WAN_KEYS") keys through a $((2 * WAN_DELAY_MS)) ms RTT link, keys/s (kvsync's full sync itself: $E_KV_SYNC_SECONDS s) | $(fmt "$E_KV_RATE") | $(fmt "$E_MM_RATE" 1)$E_MM_NOTE | $(fmt "$E_IDEAL_RATE") (ideal copier) | ${E_VS_MM}× | ${E_VS_IDEAL}% |"
  echo "| (e) Full copy of $(fmt "$WAN_SMALL_KEYS") keys through the same link, keys/s | $(fmt "$E2_KV_RATE") | | $(fmt "$E2_IDEAL_RATE") (ideal copier) | | ${E2_VS_IDEAL}% |"
  echo "| (f) Catch-up after kill -9 + $(fmt "$RESTART_CHANGES") source changes, s | $F_SECONDS ($F_PATH) | | | | |"
  for p in source destination; do
    for r in "${WAN_LAG_RATES[@]}"; do
      echo "| (h) Live lag through a $((2 * WAN_DELAY_MS)) ms RTT link, syncer beside the $p, $(fmt "$r") puts/s (achieved $(fmt "${WLAG[kvsync,$p,$r,send_rate]}")), p50 / p99 / max ms | $(wlagcell kvsync "$p" "$r") | $(wlagcell make-mirror "$p" "$r") | | | |"
    done
  done
  if [[ -n $G_RSS ]]; then
    echo "| (g) Full copy of $(fmt "$RSS_KEYS") keys: keys/s, peak RSS MB | $(fmt "$G_RATE") keys/s, $G_RSS MB | | | | |"
  fi
  echo
  echo "Targets (from the issue):"
  echo
  echo "- Full copy ≥ 25× make-mirror: ${A_VS_MM}× — $(verdict ge "$A_RATE" "25 * $B_RATE")"
  echo "- Full copy ≥ 80% of the ideal copier: ${A_VS_IDEAL}% — $(verdict ge "$A_RATE" "0.8 * $C_IDEAL_RATE")"
  echo "- p99 lag ≤ 100 ms at $(fmt "$LAG_TOP") puts/s: $(fmt "${LAG[kvsync,$LAG_TOP,p99_ms]}") ms — $(verdict eval "le ${LAG[kvsync,$LAG_TOP,p99_ms]} 100 && [[ ${LAG[kvsync,$LAG_TOP,missing]} == 0 ]]")"
  echo "- Through a 30 ms RTT link ≥ 300× make-mirror: ${E_VS_MM}× — $(verdict ge "$E_KV_RATE" "300 * $E_MM_RATE")"
  echo "- Full copy through the link ≥ 90% of the ideal copier ($(fmt "$WAN_KEYS") keys): ${E_VS_IDEAL}% — $(verdict ge "$E_KV_RATE" "0.9 * $E_IDEAL_RATE")"
  for p in source destination; do
    echo "- Through the link, beside the $p, p99 lag ≤ 250 ms at ≥ $(fmt "$WAN_LAG_GOAL_RATE") puts/s (measured at $(fmt "$WAN_GOAL_AT"), achieved $(fmt "${WLAG[kvsync,$p,$WAN_GOAL_AT,send_rate]}")): $(fmt "${WLAG[kvsync,$p,$WAN_GOAL_AT,p99_ms]}") ms — $(verdict eval "le ${WLAG[kvsync,$p,$WAN_GOAL_AT,p99_ms]} 250 && [[ ${WLAG[kvsync,$p,$WAN_GOAL_AT,missing]} == 0 ]]")"
  done
  echo "- Restart catch-up < 2 s: $F_SECONDS s — $(verdict le "$F_SECONDS" 2)"
  if [[ -n $G_RSS ]]; then
    if [[ $RSS_KEYS -ge 1000000 ]]; then
      echo "- Peak RSS ≤ 150 MB at $(fmt "$RSS_KEYS") keys: $G_RSS MB — $(verdict le "$G_RSS" 150)"
    else
      echo "- Peak RSS ≤ 150 MB at 1,000,000 keys: not measured (this run: $G_RSS MB at $(fmt "$RSS_KEYS") keys)"
    fi
  else
    echo "- Peak RSS ≤ 150 MB at 1,000,000 keys: not measured in this run (use --rss-keys 1000000); at $(fmt "$KEYS") keys: $A_RSS MB"
  fi
  echo
  echo "Notes: lag is measured from just before the source put is sent to the moment the"
  echo "destination watch delivers the event, so it includes the source put's own latency."
  echo "\"≥\" marks lag figures where some events had not arrived $((30)) s after the writes"
  echo "ended; those events count as arriving at that deadline, so the figures are lower bounds."
  echo "make-mirror copies are capped at $(fmt "$MM_MAX_KEYS") keys or $MM_MAX_SECONDS s and their rate extrapolated."
  echo "<!-- etcd2etcd-results:end -->"
} >"$SECTION"

publish_section etcd2etcd-results "$SECTION"
OK=1
