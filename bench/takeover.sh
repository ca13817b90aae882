#!/usr/bin/env bash
# Active/standby takeover time of `kvsync etcd2etcd --ha`, and a check that no source revision
# is lost or applied twice across takeovers. Starts its own single-member source and
# destination etcd servers (loopback, free ports, a temp dir), two replicas with --ha and
# distinct instance ids, and a writer putting a NEW key <prefix>%09d into the source at --rate
# puts/s (every source revision is a distinct key). Then, --trials times:
#   wait until both replicas run, one leads, the other campaigns, and the destination's
#   checkpoint has caught up with the source; kill -9 the leader at T0; T1 = receive time of
#   the first destination checkpoint write whose "writer" is the other replica (a watch on
#   the checkpoint key); takeover = T1 - T0; restart the killed replica with the same id.
# Finally the writer is stopped, the destination catches up, and the source and destination
# prefixes are compared key by key (lost = missing or different keys, plus extra ones), and a
# destination watch started before any write counts put events per key (duplicated = put
# events beyond the first of a key). A markdown section goes into --out (default
# docs/benchmarks.md), replacing the one between the takeover-results markers.
#
# Usage: bench/takeover.sh [--trials 10] [--lease-ttl 5] [--rate 200] [--out FILE]
#                          [--no-build] [--keep]
# Environment: BUILD_DIR (default ./build-bench), ETCD (default etcd), ETCDCTL (etcdctl).
set -euo pipefail

BENCH_NAME=takeover.sh
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
COMMAND_LINE="bench/$BENCH_NAME${*:+ $*}"

TRIALS=10
LEASE_TTL=5
RATE=200
VALUE_SIZE=64
PREFIX=/takeover/
TASK=takeover                          # kvsync's default task name for $PREFIX
META=/kvsync/meta/$TASK
ELECTION=$META/election
CP_KEY=$META/checkpoint
IDS=(replica-a replica-b)
READY_TIMEOUT=60                       # s: both replicas up, one leading, caught up
SETTLE_SECONDS=1                       # s in steady state before a kill (plus a random part)

while [[ $# -gt 0 ]]; do
  case $1 in
    --trials) is_uint "${2:-}" && [[ $2 -gt 0 ]] || die_usage "--trials needs a positive integer"
      TRIALS=$2; shift 2 ;;
    --lease-ttl) is_uint "${2:-}" && [[ $2 -gt 0 ]] || die_usage "--lease-ttl needs a positive integer (seconds)"
      LEASE_TTL=$2; shift 2 ;;
    --rate) is_uint "${2:-}" && [[ $2 -gt 0 ]] || die_usage "--rate needs a positive integer"
      RATE=$2; shift 2 ;;
    *) common_arg "$@"; shift "$ARG_SHIFT" ;;
  esac
done

require_tools "$ETCD" "$ETCDCTL" awk
build_binaries
"$BENCH" seq-put --help >/dev/null 2>&1 || fail "$BENCH has no seq-put/watch/leader subcommands; rebuild it"
setup_workdir kvsync-takeover

now_ns() { date +%s%N; }

# start_watch VAR OUT ARGS...: kvsync-bench watch on the destination from revision 1 (stdout to
# OUT, stderr to OUT.err); waits until the watch is established.
start_watch() {
  local var=$1 out=$2 i pid
  shift 2
  "$BENCH" watch --endpoints "$DST_EP" --start-revision 1 "$@" >"$out" 2>"$out.err" &
  pid=$!
  PIDS+=("$pid")
  printf -v "$var" '%s' "$pid"
  for ((i = 0; i < 200; i++)); do
    grep -q '"event":"created"' "$out" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  fail "watch $* did not start; see $out.err"
}

declare -A REPLICA_PID REPLICA_LOG REPLICA_STARTS
# start_replica ID: starts (or restarts) kvsync --ha with instance id ID; a new log per start;
# each replica gets its own admin port.
start_replica() {
  local id=$1 n admin
  n=$((${REPLICA_STARTS[$id]:-0} + 1))
  REPLICA_STARTS[$id]=$n
  REPLICA_LOG[$id]=$WORK/$id-$n.log
  admin_addr admin
  start_bg "REPLICA_PID[$id]" "${REPLICA_LOG[$id]}" "$KVSYNC" etcd2etcd \
    --src-endpoints "$SRC_EP" --dst-endpoints "$DST_EP" --prefix "$PREFIX" \
    --ha --lease-ttl "${LEASE_TTL}s" --instance-id "$id" --status-interval 0 --admin-addr "$admin"
}

other() { if [[ $1 == "${IDS[0]}" ]]; then echo "${IDS[1]}"; else echo "${IDS[0]}"; fi; }

current_leader() {
  local out
  out=$("$BENCH" leader --endpoints "$DST_EP" --name "$ELECTION" 2>/dev/null) || true
  json leader "$out"
}

checkpoint() { "$ETCDCTL" --endpoints "$DST_EP" get --print-value-only "$CP_KEY" 2>/dev/null || true; }
source_revision() { json revision "$("$BENCH" count --endpoints "$SRC_EP" --prefix "$PREFIX")"; }

# wait_ready: both replicas running, one leading, the other campaigning, and the checkpoint
# written by the leader covers the source revision read just before. Sets LEADER and STANDBY.
wait_ready() {
  local deadline=$((SECONDS + READY_TIMEOUT)) leader standby src_rev cp id
  while true; do
    for id in "${IDS[@]}"; do
      kill -0 "${REPLICA_PID[$id]}" 2>/dev/null || fail "replica $id exited; see ${REPLICA_LOG[$id]}"
    done
    leader=$(current_leader)
    if [[ -n $leader && -n ${REPLICA_PID[$leader]:-} ]]; then
      standby=$(other "$leader")
      if grep -q '"msg":"campaigning"' "${REPLICA_LOG[$standby]}"; then
        src_rev=$(source_revision)
        cp=$(checkpoint)
        if [[ $(json writer "$cp") == "$leader" && $(json revision "$cp") -ge $src_rev ]]; then
          LEADER=$leader
          STANDBY=$standby
          return 0
        fi
      fi
    fi
    [[ $SECONDS -lt $deadline ]] || fail "no steady state within ${READY_TIMEOUT} s (leader '${leader}'); see $WORK"
    sleep 0.1
  done
}

# log_ns LOG MSG: wall time (ns) of the first JSON log line of LOG with "msg":"MSG"; empty if none.
log_ns() {
  local ts
  ts=$(grep -m1 "\"msg\":\"$2\"" "$1" | sed -n 's/.*"ts":"\([^"]*\)".*/\1/p')
  [[ -n $ts ]] && date -d "$ts" +%s%N || true
}

log "work dir $WORK; trials=$TRIALS lease-ttl=${LEASE_TTL}s rate=$RATE puts/s"
start_etcd src SRC
start_etcd dst DST

# Watches on the destination from revision 1, before anything is written: every checkpoint
# write (with its writer) and every data event.
CP_WATCH=$WORK/checkpoint-watch.jsonl
DATA_WATCH=$WORK/data-watch.jsonl
start_watch CP_WATCH_PID "$CP_WATCH" --key "$CP_KEY"
start_watch DATA_WATCH_PID "$DATA_WATCH" --prefix "$PREFIX"
# The election's candidate keys (kept with --keep, for diagnosing a slow or fenced takeover).
start_watch ELECTION_WATCH_PID "$WORK/election-watch.jsonl" --prefix "$ELECTION/"

for id in "${IDS[@]}"; do start_replica "$id"; done
start_bg WRITER_PID "$WORK/writer.json" "$BENCH" seq-put --endpoints "$SRC_EP" --prefix "$PREFIX" \
  --rate "$RATE" --value-size "$VALUE_SIZE"
wait_ready
log "steady state: $LEADER leads, $STANDBY stands by; writer at $RATE puts/s"

TAKEOVER=() ELECT=() RESUME=() ROWS=() FAST_PATH=0 FENCED_TERMS=0
for ((trial = 1; trial <= TRIALS; trial++)); do
  wait_ready
  # Spread the kill over the keep-alive period (ttl/3): a random part on top of the settle time.
  sleep "$(awk -v s="$SETTLE_SECONDS" -v t="$LEASE_TTL" -v r="$RANDOM" 'BEGIN { printf "%.3f", s + t / 3 * r / 32768 }')"
  wait_ready
  killed=$LEADER
  successor=$STANDBY
  killed_pid=${REPLICA_PID[$killed]}
  successor_log=${REPLICA_LOG[$successor]}
  skip=$(wc -l <"$CP_WATCH")
  t0=$(now_ns)
  kill -KILL "$killed_pid"
  { wait "$killed_pid" || true; } 2>/dev/null

  # T1: the first checkpoint write received after T0 whose writer is the successor.
  deadline=$((SECONDS + 3 * LEASE_TTL + 30))
  first=""
  while [[ -z $first ]]; do
    first=$(tail -n +"$((skip + 1))" "$CP_WATCH" | awk -v t0="$t0" -v w="\"writer\":\"$successor\"" \
      'index($0, w) { split($0, a, /"ts_ns":/); split(a[2], b, /,/); if (b[1] + 0 > t0 + 0) { print; exit } }')
    if [[ -z $first ]]; then
      [[ $SECONDS -lt $deadline ]] || fail "trial $trial: no write by $successor within $((3 * LEASE_TTL + 30)) s of killing $killed"
      sleep 0.05
    fi
  done
  t1=$(json ts_ns "$first")
  takeover=$(calc "($t1 - $t0) / 1e9")
  became_ns=$(log_ns "$successor_log" "became leader")
  elect=$( [[ -n $became_ns ]] && calc "($became_ns - $t0) / 1e9" || echo "?")
  resume=$( [[ -n $became_ns ]] && calc "($t1 - $became_ns) / 1e9" || echo "?")
  # The last checkpoint the killed leader wrote, and the successor's first one.
  old_cp=$(awk -v w="\"writer\":\"$killed\"" 'index($0, w)' "$CP_WATCH" | tail -1)
  old_rev=$(json cp_revision "$old_cp")
  new_rev=$(json cp_revision "$first")
  # A successor whose first term's write was rejected by the fence re-campaigned before T1.
  fenced=$(grep -c '"msg":"fenced' "$successor_log" || true)
  [[ $fenced -gt 0 ]] && FENCED_TERMS=$((FENCED_TERMS + 1))
  path="?"
  if grep -q '"fast path chosen"' "$successor_log"; then
    path="checkpoint"
    FAST_PATH=$((FAST_PATH + 1))
  elif grep -q '"slow path chosen' "$successor_log"; then
    path="**full sync**"
  fi
  TAKEOVER+=("$takeover")
  ELECT+=("$elect")
  RESUME+=("$resume")
  ROWS+=("| $trial | $killed | $successor | $elect | $fenced | $resume | $takeover | $old_rev → $new_rev | $path |")
  log "trial $trial: killed $killed; $successor wrote after $takeover s (leader after $elect s, first write $resume s later, $fenced fenced terms before); checkpoint $old_rev -> $new_rev, resumed from $path"

  # The next trial needs a standby again: restart the killed replica with the same id.
  start_replica "$killed"
done

# Stop the writer, let the destination catch up, stop the replicas.
wait_ready
stop_pid "$WRITER_PID"
WRITER_OUT=$(grep '"command":"seq-put"' "$WORK/writer.json" || true)
[[ -n $WRITER_OUT ]] || fail "the writer printed no summary; see $WORK/writer.json"
wait_ready
FINAL_SRC_REV=$(source_revision)
FINAL_CP=$(checkpoint)
log "writer stopped: $WRITER_OUT; destination checkpoint at $(json revision "$FINAL_CP") of $FINAL_SRC_REV"
for id in "${IDS[@]}"; do stop_pid "${REPLICA_PID[$id]}"; done

# Key-by-key comparison.
COMPARE_OUT=$("$BENCH" compare --src "$SRC_EP" --dst "$DST_EP" --prefix "$PREFIX" || true)
[[ -n $COMPARE_OUT ]] || fail "compare failed"
log "compare: $COMPARE_OUT"
SRC_KEYS=$(json src_keys "$COMPARE_OUT")
DST_KEYS=$(json dst_keys "$COMPARE_OUT")
MISSING=$(json missing "$COMPARE_OUT")
EXTRA=$(json extra "$COMPARE_OUT")
DIFFERENT=$(json different "$COMPARE_OUT")

# The destination's history of the data keys: a sentinel key written last at the destination
# (the replicas are stopped) marks the end; every event before it has been delivered once the
# watch prints the sentinel.
SENTINEL=${PREFIX}~end-of-run
"$ETCDCTL" --endpoints "$DST_EP" put "$SENTINEL" 1 >/dev/null
for ((i = 0; i < 200; i++)); do
  grep -qF "\"key\":\"$SENTINEL\"" "$DATA_WATCH" && break
  sleep 0.05
done
grep -qF "\"key\":\"$SENTINEL\"" "$DATA_WATCH" || fail "the data watch did not deliver the sentinel; see $DATA_WATCH.err"
stop_pid "$DATA_WATCH_PID"
stop_pid "$CP_WATCH_PID"
stop_pid "$ELECTION_WATCH_PID"
grep -q '"event":"stopped"' "$DATA_WATCH" || fail "the data watch ended abnormally; see $DATA_WATCH.err"
# put events per key (sentinel excluded), delete events, and a duplicated example.
read -r WATCH_KEYS WATCH_PUTS DUP_KEYS DUP_EVENTS DELETES DUP_EXAMPLE < <(
  awk -v sentinel="\"key\":\"$SENTINEL\"" '
    /"type":/ && !index($0, sentinel) {
      match($0, /"key":"[^"]*"/); key = substr($0, RSTART + 7, RLENGTH - 8)
      if (index($0, "\"type\":\"put\"")) { puts[key]++; nput++ } else ndel++
    }
    END {
      for (k in puts) { n++; if (puts[k] > 1) { dk++; de += puts[k] - 1; if (ex == "") ex = k "×" puts[k] } }
      printf "%d %d %d %d %d %s\n", n, nput, dk, de, ndel, (ex == "" ? "-" : ex)
    }' "$DATA_WATCH")
WATCH_RECONNECTS=$(json reconnects "$(grep '"event":"stopped"' "$DATA_WATCH")")
# Cross-check: destination keys whose version is above 1 (written more than once).
DST_MULTI_VERSION=$("$ETCDCTL" --endpoints "$DST_EP" get --prefix "$PREFIX" -w fields |
  awk -v sentinel="\"$SENTINEL\"" '/^"Key" :/ { key = $3 } /^"Version" :/ { if ($3 > 1 && key != sentinel) n++ } END { print n + 0 }')
# The checkpoint revision must never go backwards across writers.
CP_REGRESSIONS=$(awk '/"cp_revision":/ { split($0, a, /"cp_revision":/); split(a[2], b, /[,}]/)
  if (b[1] + 0 < last) n++; last = b[1] + 0 } END { print n + 0 }' "$CP_WATCH")
FENCED=$(cat "$WORK"/replica-*.log | grep -c '"msg":"fenced' || true)

LOST=$((MISSING + DIFFERENT))
SENT=$(json sent "$WRITER_OUT")
FAILED_PUTS=$(json failed "$WRITER_OUT")
log "history: $WATCH_KEYS keys, $WATCH_PUTS put events, $DUP_KEYS keys written more than once ($DUP_EVENTS extra puts, e.g. $DUP_EXAMPLE), $DELETES deletes; $DST_MULTI_VERSION keys with version > 1; $CP_REGRESSIONS checkpoint regressions; $FENCED fenced writes"

# Report.
T_MEDIAN=$(median "${TAKEOVER[@]}")
T_MAX=$(maximum "${TAKEOVER[@]}")
T_MIN=$(minimum "${TAKEOVER[@]}")
E_MEDIAN=$(median "${ELECT[@]}")
R_MEDIAN=$(median "${RESUME[@]}")
R_MAX=$(maximum "${RESUME[@]}")
host_facts
DUPLICATED=$DUP_EVENTS

SECTION=$WORK/section.md
{
  echo "<!-- takeover-results:begin -->"
  echo "## Takeover results"
  echo
  echo "Generated by \`bench/takeover.sh\`; edits between the \`takeover-results\` markers are overwritten."
  echo
  echo "- Command: \`$COMMAND_LINE\`"
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Machine: $(nproc) CPUs ($CPU), $MEM_GB GiB RAM, $(uname -sr); both etcd servers, both"
  echo "  replicas, the writer and the watchers share it"
  echo "- etcd $ETCD_VERSION (single member each, no auto-compaction); kvsync at $GIT_REV"
  echo "- Two replicas \`kvsync etcd2etcd --ha --lease-ttl ${LEASE_TTL}s\` (ids ${IDS[0]}, ${IDS[1]}); lease TTL $LEASE_TTL s;"
  echo "  writer: $(fmt "$RATE") puts/s of new keys (${VALUE_SIZE} B values) for the whole run; $TRIALS trials"
  echo
  echo "| Trial | Killed | New leader | kill → \`became leader\`, s | Fenced terms before the first write | \`became leader\` → first write, s | Takeover (kill → first write), s | Checkpoint revision (last old → first new) | Resumed from |"
  echo "|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "| Summary | Value |"
  echo "|---|---|"
  echo "| Takeover, median / max / min, s | $T_MEDIAN / $T_MAX / $T_MIN |"
  echo "| of which election (kill → \`became leader\`), median s | $E_MEDIAN |"
  echo "| of which resume (\`became leader\` → first destination write), median / max s | $R_MEDIAN / $R_MAX |"
  echo "| Source keys written (writer: $(fmt "$SENT") puts acknowledged, $(fmt "$FAILED_PUTS") failed) | $(fmt "$SRC_KEYS") |"
  echo "| Destination keys | $(fmt "$DST_KEYS") |"
  echo "| Lost source revisions (keys missing or different at the destination) | $LOST ($MISSING missing, $DIFFERENT different) |"
  echo "| Extra destination keys | $EXTRA |"
  echo "| Duplicated source revisions (destination put events beyond the first per key) | $DUPLICATED$([[ $DUPLICATED != 0 ]] && echo " in $DUP_KEYS keys, e.g. \`${DUP_EXAMPLE}\`") |"
  echo "| Destination history: keys / put events / delete events | $(fmt "$WATCH_KEYS") / $(fmt "$WATCH_PUTS") / $DELETES |"
  echo "| Destination keys with version > 1 (cross-check) | $DST_MULTI_VERSION |"
  echo "| Checkpoint revision going backwards between consecutive writes | $CP_REGRESSIONS |"
  echo "| Successor resumed from the checkpoint (not a full sync) | $FAST_PATH of $TRIALS |"
  echo "| Fenced writes logged (all replicas, whole run) | $FENCED |"
  echo "| Trials whose new leader's first term was fenced (it re-campaigned before writing) | $FENCED_TERMS of $TRIALS |"
  echo
  echo "Targets:"
  echo
  echo "- Median takeover ≤ lease TTL ($LEASE_TTL s): $T_MEDIAN s — $(verdict le "$T_MEDIAN" "$LEASE_TTL")"
  echo "- Max takeover ≤ lease TTL + 1 s ($((LEASE_TTL + 1)) s): $T_MAX s — $(verdict le "$T_MAX" "$LEASE_TTL + 1")"
  echo "- Zero lost or duplicated source revisions: $LOST lost, $DUPLICATED duplicated, $EXTRA extra — $(verdict eval "[[ $LOST == 0 && $DUPLICATED == 0 && $EXTRA == 0 && $DST_MULTI_VERSION == 0 ]]")"
  echo
  echo "Notes: T0 is taken just before \`kill -9\` of the leader; T1 is when a watch on the"
  echo "destination's checkpoint key receives the first checkpoint whose \`writer\` is the other"
  echo "replica (the checkpoint is written in the same txn as the data, so this is the new"
  echo "leader's first destination write). \`became leader\` comes from the successor's log"
  echo "(millisecond timestamps). The old leader's lease lives up to one TTL after its last"
  echo "keep-alive (sent every TTL/3), and etcd checks lease expiry every 500 ms, so the election"
  echo "part is expected between about ⅔ TTL and TTL + 0.5 s; kills are spread over the keep-alive"
  echo "period by a random delay. A fenced first term means the successor was told it won the"
  echo "election but its first txn failed the fence compare (its election key was gone); it"
  echo "resigned and campaigned again, and that time is part of \`became leader\` → first write."
  echo "Data-watch reconnects during the run: ${WATCH_RECONNECTS:-0}."
  echo "<!-- takeover-results:end -->"
} >"$SECTION"

publish_section takeover-results "$SECTION"
OK=1
