#!/usr/bin/env bash
# kvsync check etcd2etcd on N consistent keys and on 100 scattered differences, against the
# read ceiling, on this machine. Starts its own source and destination etcd (loopback, free
# ports, a temp dir), loads N keys x 256 B into the source, copies them with
# `kvsync etcd2etcd --once`, and measures:
#   (1) full check (--single-round) of the N consistent keys: seconds, keys/s, bytes read
#   (2) presence check (--keys-only --single-round): the same; its bytes as % of (1)'s
#   (3) the read ceiling: `kvsync-bench read` of the source and of the destination prefix run
#       concurrently (same page size, no comparison); the slower of the two is the ceiling
#       time. Full and keys-only.
#   (4) 100 scattered differences (40 keys deleted at the destination, 30 values changed, 30
#       extra keys added there): full check with the default two rounds; time and counts
# and writes a markdown results section into --out (default docs/benchmarks.md), replacing
# the previous one (between the `check-results` markers).
#
# Usage: bench/check.sh [--keys 1000000] [--page-size 10000] [--out FILE] [--no-build] [--keep]
# Environment: BUILD_DIR (default ./build-bench), ETCD (default etcd), ETCDCTL (etcdctl).
set -euo pipefail

BENCH_NAME=check.sh
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
COMMAND_LINE="bench/$BENCH_NAME${*:+ $*}"

KEYS=1000000
VALUE_SIZE=256
PAGE_SIZE=10000
PREFIX=/bench/
N_DELETE=40
N_CHANGE=30
N_ADD=30

while [[ $# -gt 0 ]]; do
  case $1 in
    --keys) is_uint "${2:-}" && [[ $2 -ge 1000 ]] || die_usage "--keys needs an integer >= 1000"
      KEYS=$2; shift 2 ;;
    --page-size) is_uint "${2:-}" && [[ $2 -gt 0 ]] || die_usage "--page-size needs a positive integer"
      PAGE_SIZE=$2; shift 2 ;;
    *) common_arg "$@"; shift "$ARG_SHIFT" ;;
  esac
done

require_tools "$ETCD" "$ETCDCTL" awk shuf
build_binaries
setup_workdir kvsync-check-bench

now() { date +%s.%N; }
RESULTS=$WORK/results.jsonl
record() { echo "$1" >>"$RESULTS"; }

# run_check TAG EXPECT_EXIT FLAGS...: kvsync check etcd2etcd --output json; sets CHECK (its JSON
# line) and CHECK_WALL (wall seconds, process start included).
run_check() {
  local tag=$1 expect=$2 rc=0 t0 t1
  shift 2
  t0=$(now)
  CHECK=$("$KVSYNC" check etcd2etcd --src-endpoints "$SRC_EP" --dst-endpoints "$DST_EP" \
    --prefix "$PREFIX" --page-size "$PAGE_SIZE" --output json "$@" 2>"$WORK/check-$tag.log") || rc=$?
  t1=$(now)
  CHECK_WALL=$(calc "$t1 - $t0")
  record "{\"step\":\"$tag\",\"exit\":$rc,\"wall\":$CHECK_WALL,\"result\":$CHECK}"
  if [[ $rc != "$expect" ]]; then
    echo "$BENCH_NAME: error: check $tag exited $rc (expected $expect): $CHECK" >&2
    tail -5 "$WORK/check-$tag.log" >&2
    exit 1
  fi
}

# read_ceiling TAG [--keys-only]: kvsync-bench read of the source and the destination prefix,
# concurrently; sets CEIL_SECONDS (the slower read's seconds), CEIL_WALL and CEIL_BYTES.
read_ceiling() {
  local tag=$1 t0 t1 a b
  shift
  t0=$(now)
  "$BENCH" read --endpoints "$SRC_EP" --prefix "$PREFIX" --page-size "$PAGE_SIZE" "$@" >"$WORK/read-$tag-src.json" &
  local pa=$!
  "$BENCH" read --endpoints "$DST_EP" --prefix "$PREFIX" --page-size "$PAGE_SIZE" "$@" >"$WORK/read-$tag-dst.json" &
  local pb=$!
  wait "$pa" || fail "kvsync-bench read (source) failed"
  wait "$pb" || fail "kvsync-bench read (destination) failed"
  t1=$(now)
  a=$(cat "$WORK/read-$tag-src.json")
  b=$(cat "$WORK/read-$tag-dst.json")
  record "$a"
  record "$b"
  [[ $(json keys "$a") == "$KEYS" && $(json keys "$b") == "$KEYS" ]] ||
    fail "read $tag: expected $KEYS keys on both sides: $a / $b"
  CEIL_SECONDS=$(maximum "$(json seconds "$a")" "$(json seconds "$b")")
  CEIL_WALL=$(calc "$t1 - $t0")
  CEIL_BYTES=$(($(json bytes "$a") + $(json bytes "$b")))
}

log "work dir $WORK; keys=$KEYS value-size=$VALUE_SIZE page-size=$PAGE_SIZE"
start_etcd src SRC
start_etcd dst DST

out=$("$BENCH" load --endpoints "$SRC_EP" --prefix "$PREFIX" --keys "$KEYS" --value-size "$VALUE_SIZE")
record "$out"
log "loaded $KEYS keys into the source at $(json keys_per_sec "$out") keys/s"

admin_addr ADMIN
t0=$(now)
"$KVSYNC" etcd2etcd --once --src-endpoints "$SRC_EP" --dst-endpoints "$DST_EP" --prefix "$PREFIX" \
  --admin-addr "$ADMIN" 2>"$WORK/copy.log" || { tail -5 "$WORK/copy.log" >&2; fail "kvsync --once failed"; }
COPY_SECONDS=$(calc "$(now) - $t0")
log "copied with kvsync etcd2etcd --once in $COPY_SECONDS s"

# (3) first, so that neither check profits from pages the other warmed more than the ceiling
# does; then (1) and (2).
read_ceiling full
C_FULL_SECONDS=$CEIL_SECONDS C_FULL_WALL=$CEIL_WALL C_FULL_BYTES=$CEIL_BYTES
log "(3) ceiling, full: both prefixes read concurrently in $C_FULL_SECONDS s (wall $C_FULL_WALL s), $C_FULL_BYTES bytes"
read_ceiling keys --keys-only
C_KEYS_SECONDS=$CEIL_SECONDS C_KEYS_WALL=$CEIL_WALL C_KEYS_BYTES=$CEIL_BYTES
log "(3) ceiling, keys only: $C_KEYS_SECONDS s (wall $C_KEYS_WALL s), $C_KEYS_BYTES bytes"

run_check full 0 --single-round
F_JSON=$CHECK F_WALL=$CHECK_WALL
F_SECONDS=$(calc "$(json seconds "$F_JSON")")
F_BYTES=$(($(json source_bytes "$F_JSON") + $(json destination_bytes "$F_JSON")))
[[ $(json consistent "$F_JSON") == true && $(json source_keys "$F_JSON") == "$KEYS" ]] ||
  fail "full check: unexpected result $F_JSON"
log "(1) full check: $F_SECONDS s (wall $F_WALL s), $F_BYTES bytes"

run_check presence 0 --keys-only --single-round
P_JSON=$CHECK P_WALL=$CHECK_WALL
P_SECONDS=$(calc "$(json seconds "$P_JSON")")
P_BYTES=$(($(json source_bytes "$P_JSON") + $(json destination_bytes "$P_JSON")))
[[ $(json consistent "$P_JSON") == true && $(json source_keys "$P_JSON") == "$KEYS" ]] ||
  fail "presence check: unexpected result $P_JSON"
log "(2) presence check: $P_SECONDS s (wall $P_WALL s), $P_BYTES bytes"

# (4) 100 scattered differences at the destination: distinct random key indexes.
mapfile -t IDX < <(shuf -i 0-$((KEYS - 1)) -n $((N_DELETE + N_CHANGE)))
key_of() { printf '%s%08d' "$PREFIX" "$1"; }
for ((i = 0; i < N_DELETE; i++)); do
  "$ETCDCTL" --endpoints "$DST_EP" del "$(key_of "${IDX[i]}")" >/dev/null
done
for ((i = N_DELETE; i < N_DELETE + N_CHANGE; i++)); do
  "$ETCDCTL" --endpoints "$DST_EP" put "$(key_of "${IDX[i]}")" "changed-$i" >/dev/null
done
for ((i = 0; i < N_ADD; i++)); do  # extra keys sort between the loaded ones: <key>x
  "$ETCDCTL" --endpoints "$DST_EP" put "$(key_of "$(shuf -i 0-$((KEYS - 1)) -n 1)")x$i" "extra-$i" >/dev/null
done
run_check diffs 1
D_JSON=$CHECK D_WALL=$CHECK_WALL
D_SECONDS=$(calc "$(json seconds "$D_JSON")")
D_MISS=$(json dst_miss "$D_JSON") D_MISMATCH=$(json mismatch "$D_JSON") D_EXTRA=$(json src_miss "$D_JSON")
D_ROUNDS=$(json rounds "$D_JSON")
log "(4) differences: dst_miss=$D_MISS mismatch=$D_MISMATCH src_miss=$D_EXTRA in $D_SECONDS s ($D_ROUNDS rounds)"

# --- report ---------------------------------------------------------------------------------
host_facts
F_RATE=$(calc "$KEYS / $F_SECONDS" 0)
P_RATE=$(calc "$KEYS / $P_SECONDS" 0)
CF_RATE=$(calc "$KEYS / $C_FULL_SECONDS" 0)
CK_RATE=$(calc "$KEYS / $C_KEYS_SECONDS" 0)
F_OF_CEIL=$(calc "100 * $C_FULL_SECONDS / $F_SECONDS" 0)
P_OF_CEIL=$(calc "100 * $C_KEYS_SECONDS / $P_SECONDS" 0)
P_OF_F_BYTES=$(calc "100 * $P_BYTES / $F_BYTES" 1)
MB() { calc "$1 / 1048576" 1; }
COUNTS_OK=false
[[ $D_MISS == "$N_DELETE" && $D_MISMATCH == "$N_CHANGE" && $D_EXTRA == "$N_ADD" ]] && COUNTS_OK=true

SECTION=$WORK/section.md
{
  echo "<!-- check-results:begin (generated by bench/check.sh; edits here are overwritten) -->"
  echo
  echo "### Results: kvsync check etcd2etcd, $(fmt "$KEYS") keys × $VALUE_SIZE B"
  echo
  echo "$(date -u +%Y-%m-%d), \`$COMMAND_LINE\`, kvsync $GIT_REV, etcd $ETCD_VERSION, $CPU," \
    "$(nproc) CPUs, $MEM_GB GB RAM; source and destination are single-member etcd servers on" \
    "the same host. Page size $(fmt "$PAGE_SIZE"). Single runs. (Set-up: load" \
    "$(fmt "$(json keys_per_sec "$(head -1 "$RESULTS")")") keys/s; \`kvsync etcd2etcd --once\` copy $COPY_SECONDS s.)"
  echo
  echo "| Step | What | Seconds | Keys/s | Bytes read (both sides) | vs ceiling |"
  echo "|---|---|---:|---:|---:|---:|"
  echo "| (1) | full check, \`--single-round\`, consistent | $F_SECONDS | $(fmt "$F_RATE") | $(MB "$F_BYTES") MB | $F_OF_CEIL% |"
  echo "| (2) | presence check, \`--keys-only --single-round\` | $P_SECONDS | $(fmt "$P_RATE") | $(MB "$P_BYTES") MB ($P_OF_F_BYTES% of full) | $P_OF_CEIL% |"
  echo "| (3) | ceiling: \`kvsync-bench read\` of both prefixes, concurrent | $C_FULL_SECONDS | $(fmt "$CF_RATE") | $(MB "$C_FULL_BYTES") MB | 100% |"
  echo "| (3) | ceiling, \`--keys-only\` | $C_KEYS_SECONDS | $(fmt "$CK_RATE") | $(MB "$C_KEYS_BYTES") MB | 100% |"
  echo "| (4) | full check, 100 scattered differences (default 2 rounds) | $D_SECONDS | $(fmt "$(calc "$KEYS / $D_SECONDS" 0)") | – | – |"
  echo
  echo "(4) found dst_miss $D_MISS / mismatch $D_MISMATCH / src_miss $D_EXTRA (planted $N_DELETE / $N_CHANGE / $N_ADD)" \
    "in $D_ROUNDS rounds, $(json unconfirmed "$D_JSON") unconfirmed."
  echo "Keys/s = N / the check's own \`seconds\`; wall times including process start: (1) $F_WALL s," \
    "(2) $P_WALL s, (4) $D_WALL s, (3) $C_FULL_WALL s / $C_KEYS_WALL s."
  echo
  echo "| Target | Result | |"
  echo "|---|---|---|"
  echo "| presence bytes ≤ 20% of full-check bytes | $P_OF_F_BYTES% | $(verdict le "$P_OF_F_BYTES" 20) |"
  echo "| full check rate ≥ 50% of the read ceiling | $F_OF_CEIL% | $(verdict ge "$F_OF_CEIL" 50) |"
  echo "| 100 differences counted exactly (40/30/30) | $D_MISS/$D_MISMATCH/$D_EXTRA | $(verdict $COUNTS_OK) |"
  echo
  echo "<!-- check-results:end -->"
} >"$SECTION"

publish_section check-results "$SECTION"
OK=1
