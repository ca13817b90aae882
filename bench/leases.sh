#!/usr/bin/env bash
# Cost of lease-aware mirroring in `kvsync etcd2etcd`: --leases leases × --keys-per-lease keys
# registered at a source etcd and kept alive there (kvsync-bench providers, TTL --ttl s), then,
# in one run and on the same data:
#   (a) kvsync with leases (the default, --lease-min-ttl 60s): full sync into an empty
#       destination (each lease granted at the destination with its source ID), then
#       --steady seconds of mirroring and keeping the destination leases alive;
#   (b) kvsync --no-leases on a fresh destination (today's make-mirror-like behaviour): the same.
# Reported for both: full-sync time, kvsync CPU in steady state, and requests per second on
# each side (etcd's grpc_server_msg_received_total, all methods and Lease* only), plus
# kvsync's keep-alives per second. A markdown section goes into --out (default
# docs/benchmarks.md), replacing the one between the leases-results markers.
#
# Usage: bench/leases.sh [--leases 10000] [--keys-per-lease 5] [--ttl 30] [--steady 60]
#                        [--out FILE] [--no-build] [--keep]
# Environment: BUILD_DIR (default ./build-bench), ETCD (default etcd), ETCDCTL (etcdctl).
set -euo pipefail

BENCH_NAME=leases.sh
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
COMMAND_LINE="bench/$BENCH_NAME${*:+ $*}"

LEASES=10000
KEYS_PER_LEASE=5
TTL=30
STEADY=60
PREFIX=/leases/
TASK=leases

while [[ $# -gt 0 ]]; do
  case $1 in
    --leases) is_uint "${2:-}" && [[ $2 -gt 0 ]] || die_usage "--leases needs a positive integer"
      LEASES=$2; shift 2 ;;
    --keys-per-lease) is_uint "${2:-}" && [[ $2 -gt 0 ]] || die_usage "--keys-per-lease needs a positive integer"
      KEYS_PER_LEASE=$2; shift 2 ;;
    --ttl) is_uint "${2:-}" && [[ $2 -ge 3 ]] || die_usage "--ttl needs an integer >= 3 (seconds)"
      TTL=$2; shift 2 ;;
    --steady) is_uint "${2:-}" && [[ $2 -gt 0 ]] || die_usage "--steady needs a positive integer (seconds)"
      STEADY=$2; shift 2 ;;
    *) common_arg "$@"; shift "$ARG_SHIFT" ;;
  esac
done

require_tools "$ETCD" "$ETCDCTL" awk curl
build_binaries
"$BENCH" providers --help >/dev/null 2>&1 || fail "$BENCH has no providers subcommand; rebuild it"
setup_workdir kvsync-leases
host_facts
KEYS=$((LEASES * KEYS_PER_LEASE))

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# msgs EP: "ALL LEASE" requests received by an etcd so far, from one scrape (sums of
# grpc_server_msg_received_total over all methods, and over the Lease service's).
msgs() {
  curl -s "http://$1/metrics" | awk '
    /^grpc_server_msg_received_total/ { s += $NF; if ($0 ~ /grpc_service="etcdserverpb.Lease"/) l += $NF }
    END { printf "%d %d", s, l }'
}
metric() {  # metric ADMIN NAME: one kvsync metric sample (0 when absent)
  curl -s "http://$1/metrics" | awk -v n="$2" '$1 ~ "^"n"({|$)" { v = $NF } END { printf "%s", v + 0 }'
}

start_etcd src SRC
log "registering $LEASES providers × $KEYS_PER_LEASE keys (TTL $TTL s) at the source"
start_bg PROVIDERS_PID "$WORK/providers.log" "$BENCH" providers --endpoints "$SRC_EP" \
  --prefix "$PREFIX" --leases "$LEASES" --keys-per-lease "$KEYS_PER_LEASE" --ttl "$TTL" \
  --ready-file "$WORK/providers.ready"
for ((i = 0; i < 1200; i++)); do
  [[ -f $WORK/providers.ready ]] && break
  kill -0 "$PROVIDERS_PID" 2>/dev/null || fail "providers failed: $(tail -3 "$WORK/providers.log")"
  sleep 0.5
done
[[ -f $WORK/providers.ready ]] || fail "providers not registered within 10 minutes"

# run_case NAME FLAGS...: a fresh destination, kvsync with FLAGS; sets <NAME>_FULL (s),
# <NAME>_CPU (% of one core), <NAME>_SRC / _DST (requests/s), <NAME>_SRC_LEASE / _DST_LEASE
# (Lease* requests/s), <NAME>_KEEPALIVES (kvsync keep-alives/s).
run_case() {
  local name=$1 admin pid dst_var t0 c0 e0 f0 s0 d0 sl0 dl0 k0 t1 c1 e1 f1 s1 d1 sl1 dl1 k1 full secs
  shift
  start_etcd "dst-$name" DST
  dst_var=$DST_EP
  admin_addr admin
  log "$name: kvsync etcd2etcd $*"
  start_bg pid "$WORK/kvsync-$name.log" "$KVSYNC" etcd2etcd --src-endpoints "$SRC_EP" \
    --dst-endpoints "$dst_var" --prefix "$PREFIX" --admin-addr "$admin" --log-format text \
    --status-interval 0 --check-interval 0 "$@"
  for ((i = 0; i < 1200; i++)); do
    grep -q 'full sync done' "$WORK/kvsync-$name.log" && break
    kill -0 "$pid" 2>/dev/null || fail "kvsync ($name) exited: $(tail -3 "$WORK/kvsync-$name.log")"
    sleep 0.5
  done
  full=$(sed -n 's/.*full sync done.* seconds=\([0-9.]*\).*/\1/p' "$WORK/kvsync-$name.log" | head -1)
  [[ -n $full ]] || fail "kvsync ($name) did not finish its full sync; see $WORK/kvsync-$name.log"
  "$BENCH" compare --src "$SRC_EP" --dst "$dst_var" --prefix "$PREFIX" >"$WORK/compare-$name.json" \
    || fail "$name: destination differs from the source after the full sync"
  t0=$(date +%s.%N); c0=$(cpu_ticks "$pid"); e0=$(cpu_ticks "$SRC_PID"); f0=$(cpu_ticks "$DST_PID")
  read -r s0 sl0 <<<"$(msgs "$SRC_EP")"; read -r d0 dl0 <<<"$(msgs "$dst_var")"
  k0=$(metric "$admin" kvsync_lease_keepalives_total)
  sleep "$STEADY"   # the measurement window
  t1=$(date +%s.%N); c1=$(cpu_ticks "$pid"); e1=$(cpu_ticks "$SRC_PID"); f1=$(cpu_ticks "$DST_PID")
  read -r s1 sl1 <<<"$(msgs "$SRC_EP")"; read -r d1 dl1 <<<"$(msgs "$dst_var")"
  k1=$(metric "$admin" kvsync_lease_keepalives_total)
  secs=$(calc "$t1 - $t0")
  printf -v "${name}_FULL" '%s' "$(calc "$full" 2)"
  printf -v "${name}_CPU" '%s' "$(calc "($c1 - $c0) / $(getconf CLK_TCK) / $secs * 100" 1)"
  printf -v "${name}_SRC_CPU" '%s' "$(calc "($e1 - $e0) / $(getconf CLK_TCK) / $secs * 100" 1)"
  printf -v "${name}_DST_CPU" '%s' "$(calc "($f1 - $f0) / $(getconf CLK_TCK) / $secs * 100" 1)"
  printf -v "${name}_SRC" '%s' "$(calc "($s1 - $s0) / $secs" 0)"
  printf -v "${name}_DST" '%s' "$(calc "($d1 - $d0) / $secs" 0)"
  printf -v "${name}_SRC_LEASE" '%s' "$(calc "($sl1 - $sl0) / $secs" 0)"
  printf -v "${name}_DST_LEASE" '%s' "$(calc "($dl1 - $dl0) / $secs" 0)"
  printf -v "${name}_KEEPALIVES" '%s' "$(calc "($k1 - $k0) / $secs" 0)"
  printf -v "${name}_MIRRORED" '%s' "$(metric "$admin" kvsync_leases_mirrored)"
  printf -v "${name}_RSS" '%s' "$(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status")"
  stop_pid "$pid"
  stop_pid "$DST_PID"
  log "$name: full sync ${full} s, CPU $(eval echo "\$${name}_CPU") %, mirrored leases $(eval echo "\$${name}_MIRRORED")"
}

run_case with
run_case without --no-leases
stop_pid "$PROVIDERS_PID"

ratio=$(calc "$with_FULL / $without_FULL" 2)
section=$WORK/section.md
cat >"$section" <<EOF
<!-- leases-results:begin -->
## Lease-aware mirroring: $(fmt "$LEASES") leases × $KEYS_PER_LEASE keys

\`$COMMAND_LINE\` at $GIT_REV on $(date -u +%Y-%m-%d), $(nproc) cores ($CPU), etcd $ETCD_VERSION,
single-member source and destination on loopback. $(fmt "$LEASES") providers registered
$(fmt "$KEYS") keys on $TTL s leases at the source and keep them alive (ttl/3) throughout.
Steady state measured over $STEADY s after the full sync; requests are etcd's
\`grpc_server_msg_received_total\` (one per unary call or stream message).

| | with leases (default, floor 60 s) | \`--no-leases\` |
| --- | --- | --- |
| full sync into an empty destination | $with_FULL s | $without_FULL s (leases: ${ratio}×) |
| destination leases managed | $(fmt "$with_MIRRORED") | $(fmt "$without_MIRRORED") |
| kvsync CPU, steady state | $with_CPU % of a core | $without_CPU % |
| kvsync peak RSS | $with_RSS MiB | $without_RSS MiB |
| kvsync keep-alives/s | $(fmt "$with_KEEPALIVES") | $(fmt "$without_KEEPALIVES") |
| source etcd CPU, steady state (providers' keep-alives included) | $with_SRC_CPU % | $without_SRC_CPU % |
| destination etcd CPU, steady state | $with_DST_CPU % | $without_DST_CPU % |
| source requests/s (of them Lease*) | $(fmt "$with_SRC") ($(fmt "$with_SRC_LEASE")) | $(fmt "$without_SRC") ($(fmt "$without_SRC_LEASE")) |
| destination requests/s (of them Lease*) | $(fmt "$with_DST") ($(fmt "$with_DST_LEASE")) | $(fmt "$without_DST") ($(fmt "$without_DST_LEASE")) |

The source's requests include the providers' own keep-alives ($(fmt "$LEASES") every $((TTL / 3)) s);
kvsync adds one lease listing every 10 s (ttl/3, at most 10 s). At the destination each
managed lease is renewed every 20 s (a third of the 60 s floor) over one keep-alive stream.
A full sync that finds a lease new to the destination reads its TTL at the source and grants
it (a raft write) before writing its keys: $(fmt "$LEASES") of each, 8 at a time per writer
thread, on a 2-core machine that also runs both etcd servers; a full sync whose leases the
destination already has costs nothing extra (they are known from the lease records).
<!-- leases-results:end -->
EOF
publish_section leases-results "$section"
OK=1
