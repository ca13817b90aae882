# shellcheck shell=bash
# Helpers shared by the bench/ scripts. A script sets BENCH_NAME (its file name, used in
# messages) right after `set -euo pipefail` and sources this file:
#
#   BENCH_NAME=takeover.sh
#   source "$(dirname "$0")/lib.sh"
#
# Sourcing only sets the defaults below and defines functions; nothing is started.
# Variables a script may rely on afterwards: ROOT, BUILD_DIR, ETCD, ETCDCTL, ZK_JAVA,
# ZK_CLASSPATH, OUT, BUILD, KEEP;
# after build_binaries: GIT_REV, KVSYNC, BENCH; after setup_workdir: WORK, PIDS, OK.
# shellcheck disable=SC2034  # variables set here are read by the sourcing script

: "${BENCH_NAME:?set BENCH_NAME before sourcing bench/lib.sh}"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
ETCD=${ETCD:-etcd}
ETCDCTL=${ETCDCTL:-etcdctl}
ZK_JAVA=${ZK_JAVA:-/usr/bin/java}
ZK_CLASSPATH=${ZK_CLASSPATH:-/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar}
OUT=$ROOT/docs/benchmarks.md
BUILD=1
KEEP=0

# --- command line --------------------------------------------------------------------------

# usage: the script's header comment (line 2 up to `set -euo pipefail`).
usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

die_usage() {
  echo "$BENCH_NAME: error: $*" >&2
  exit 2
}

fail() {
  echo "$BENCH_NAME: error: $*" >&2
  exit 1
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# common_arg ARGS...: handles the flags every bench script takes (--out FILE, --no-build,
# --keep, -h/--help) and rejects anything else; sets ARG_SHIFT to the number of args consumed.
# Use as the last case: `*) common_arg "$@"; shift "$ARG_SHIFT" ;;`.
common_arg() {
  case $1 in
    --out) [[ -n ${2:-} ]] || die_usage "--out needs a file"
      OUT=$2; ARG_SHIFT=2 ;;
    --no-build) BUILD=0; ARG_SHIFT=1 ;;
    --keep) KEEP=1; ARG_SHIFT=1 ;;
    -h|--help) usage; exit 0 ;;
    *) die_usage "unknown argument $1 (see --help)" ;;
  esac
}

# --- set-up --------------------------------------------------------------------------------

# require_tools TOOL...: exits 2 when one is not on PATH.
require_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$BENCH_NAME: error: $tool not found" >&2; exit 2; }
  done
}

# build_binaries: builds kvsync and kvsync-bench in BUILD_DIR (configured Release if missing)
# unless --no-build; sets GIT_REV, KVSYNC and BENCH.
build_binaries() {
  if [[ $BUILD == 1 ]]; then
    if [[ ! -f $BUILD_DIR/build.ninja ]]; then
      cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
    fi
    ninja -C "$BUILD_DIR" -j2 kvsync kvsync-bench >/dev/null
  fi
  # The revision the binaries were built from (src/ may change while the benchmark runs).
  GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  if [[ -n $(git -C "$ROOT" status --porcelain -- src 2>/dev/null) ]]; then
    GIT_REV="$GIT_REV + uncommitted src/ changes"
  fi
  KVSYNC=$BUILD_DIR/src/cli/kvsync
  BENCH=$BUILD_DIR/tools/kvsync-bench
  [[ -x $KVSYNC && -x $BENCH ]] || fail "binaries missing in $BUILD_DIR"
}

# setup_workdir NAME: creates the temp dir WORK ($TMPDIR/NAME.XXXXXX) and installs the traps
# that stop every process in PIDS on exit and remove WORK after a successful run (OK=1)
# without --keep.
setup_workdir() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  PIDS=()
  OK=0
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

stop_pid() {  # stop_pid PID [SIGNAL]: signal (TERM), wait up to 10 s, then KILL.
  local pid=$1 sig=${2:-TERM} i
  {  # Also silences bash's "Killed" job report.
    if kill -0 "$pid"; then
      kill -"$sig" "$pid" || true
      for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" || break
        sleep 0.1
      done
      kill -KILL "$pid" || true
    fi
    wait "$pid" || true
  } 2>/dev/null
}

cleanup() {
  local i
  # Newest first: syncers, replicas and load generators before the etcd servers they use.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
  if [[ $OK == 1 && $KEEP == 0 ]]; then
    rm -rf "$WORK"
  else
    echo "$BENCH_NAME: logs and data kept in $WORK" >&2
  fi
}

# --- numbers and JSON ------------------------------------------------------------------------

calc() { awk "BEGIN { printf \"%.${2:-3}f\", $1 }"; }
# median: the middle value as given, or for an even count the mean of the two middle values
# (3 decimals).
median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
    END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
maximum() { printf '%s\n' "$@" | sort -g | tail -1; }
minimum() { printf '%s\n' "$@" | sort -g | head -1; }
# json FIELD LINE: the value of a top-level field of a flat JSON line.
json() { sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p" <<<"$2"; }

# --- processes -----------------------------------------------------------------------------

USED_PORTS=" "
# free_port VAR: sets VAR to a loopback port nothing listens on and that no earlier call
# returned (a variable, not stdout: the set of used ports must survive the call).
# (Locals are prefixed so that they never shadow the caller's VAR.)
free_port() {
  local fp_port
  while true; do
    fp_port=$((20000 + RANDOM % 40000))
    [[ $USED_PORTS == *" $fp_port "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$fp_port") 2>/dev/null; then
      USED_PORTS+="$fp_port "
      printf -v "$1" '%s' "$fp_port"
      return
    fi
  done
}

# admin_addr VAR: sets VAR to 127.0.0.1:<free port>, for a kvsync's --admin-addr (its default
# is a fixed port, which two kvsync processes, or another program, could both want).
admin_addr() {
  local aa_port
  free_port aa_port
  printf -v "$1" '127.0.0.1:%s' "$aa_port"
}

ETCD_SEQ=0
# start_etcd NAME VAR: starts a fresh single-member etcd in $WORK (8 GiB quota, no
# auto-compaction); sets VAR_EP, VAR_PID and VAR_DIR.
start_etcd() {
  local name=$1 var=$2 cport pport dir i pid
  ETCD_SEQ=$((ETCD_SEQ + 1))
  free_port cport
  free_port pport
  dir=$WORK/etcd-$ETCD_SEQ-$name
  mkdir -p "$dir"
  "$ETCD" --name "$name" --data-dir "$dir/data" \
    --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
    --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "$name=http://127.0.0.1:$pport" --initial-cluster-state new \
    --quota-backend-bytes 8589934592 --auto-compaction-retention 0 \
    --logger zap --log-outputs "$dir/etcd.log" >"$dir/stdout.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  for ((i = 0; i < 200; i++)); do
    if "$ETCDCTL" --endpoints "127.0.0.1:$cport" --dial-timeout 1s endpoint health >/dev/null 2>&1; then
      printf -v "${var}_EP" '%s' "127.0.0.1:$cport"
      printf -v "${var}_PID" '%s' "$pid"
      printf -v "${var}_DIR" '%s' "$dir"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  fail "etcd $name did not become healthy; see $dir"
}

ZK_SEQ=0
# zk_word PORT WORD: a ZooKeeper four-letter word's reply (empty when nothing answers in 2 s).
zk_word() {
  local reply
  reply=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && printf %s $2 >&3 && cat <&3" 2>/dev/null) || true
  printf '%s' "$reply"
}

# start_zk NAME VAR [HEAP_MB]: starts a fresh standalone ZooKeeper (Debian package, system
# Java) in $WORK on a free loopback port, the way tests/harness/zk_server.cc does: tickTime
# 200 ms, session timeouts 0.4-60 s, all four-letter words, no fsync, no admin server; heap
# -Xmx HEAP_MB (default 1024: 100,000 znodes with 1 KB names and their watches need several
# hundred MB) and jute.maxbuffer 64 MiB (a listing of 2,000 children with 1 KB names is ~2 MB,
# over the 1 MB default). Returns once `srvr` answers as serving (60 s deadline); sets VAR_EP
# (127.0.0.1:port), VAR_PORT, VAR_PID and VAR_DIR.
start_zk() {
  local name=$1 var=$2 heap=${3:-1024} port dir i pid
  ZK_SEQ=$((ZK_SEQ + 1))
  free_port port
  dir=$WORK/zk-$ZK_SEQ-$name
  mkdir -p "$dir/data"
  cat >"$dir/zoo.cfg" <<CFG
tickTime=200
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
minSessionTimeout=400
maxSessionTimeout=60000
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=*
forceSync=no
autopurge.purgeInterval=0
CFG
  "$ZK_JAVA" "-Xmx${heap}m" -Dzookeeper.admin.enableServer=false -Djute.maxbuffer=67108864 \
    -Dorg.slf4j.simpleLogger.showDateTime=true -Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS \
    -cp "$ZK_CLASSPATH" org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zoo.cfg" \
    >"$dir/zookeeper.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  for ((i = 0; i < 600; i++)); do
    if [[ $(zk_word "$port" srvr) == *Mode:* ]]; then
      printf -v "${var}_EP" '%s' "127.0.0.1:$port"
      printf -v "${var}_PORT" '%s' "$port"
      printf -v "${var}_PID" '%s' "$pid"
      printf -v "${var}_DIR" '%s' "$dir"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  fail "zookeeper $name did not start serving; see $dir/zookeeper.log"
}

# start_bg VAR LOG CMD...: runs CMD in the background with output to LOG; sets VAR to its pid.
start_bg() {
  local var=$1 logfile=$2
  shift 2
  "$@" >"$logfile" 2>&1 &
  PIDS+=("$!")
  printf -v "$var" '%s' "$!"
}

# parse_sizes LIST MIN: splits the comma-separated --sizes LIST into SIZE_LIST; each size must
# be at least MIN znodes (one service's worth).
parse_sizes() {
  local s
  IFS=, read -r -a SIZE_LIST <<<"$1"
  for s in "${SIZE_LIST[@]}"; do
    [[ $s -ge $2 ]] || die_usage "each size must be at least $2 znodes"
  done
}

# load_dubbo_tree SERVICES PROVIDERS NAME_BYTES LOG: kvsync-bench zk-load into $ZK_EP under
# $ROOT_ZNODE, providers ephemeral as Dubbo registers them, held by a background loader session
# (LOADER_PID); returns once it printed "ready" (600 s deadline).
load_dubbo_tree() {
  local services=$1 providers=$2 name_bytes=$3 logfile=$4 i
  start_bg LOADER_PID "$logfile" "$BENCH" zk-load --zk-servers "$ZK_EP" --root "$ROOT_ZNODE" \
    --services "$services" --providers "$providers" --name-bytes "$name_bytes" --ephemeral
  for ((i = 0; i < 6000; i++)); do
    grep -q '^ready' "$logfile" && return 0
    kill -0 "$LOADER_PID" 2>/dev/null || fail "zk-load failed: $(tail -1 "$logfile")"
    sleep 0.1
  done
  fail "zk-load did not finish in 600 s"
}

# --- report --------------------------------------------------------------------------------

ge() { awk "BEGIN { exit !($1 >= $2) }"; }
le() { awk "BEGIN { exit !($1 <= $2) }"; }
verdict() { if "$@"; then echo "met"; else echo "**missed**"; fi; }
fmt() {  # fmt NUMBER [DECIMALS]: with thousands separators
  awk -v v="$1" -v d="${2:-0}" 'BEGIN {
    s = sprintf("%." d "f", v); n = split(s, part, "."); i = part[1]; sign = ""
    if (substr(i, 1, 1) == "-") { sign = "-"; i = substr(i, 2) }
    out = ""
    while (length(i) > 3) { out = "," substr(i, length(i) - 2) out; i = substr(i, 1, length(i) - 3) }
    printf "%s%s%s%s", sign, i, out, (n > 1 ? "." part[2] : "")
  }'
}

# host_facts: sets CPU (model name), MEM_GB and ETCD_VERSION for the report header.
host_facts() {
  MEM_GB=$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
  CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  ETCD_VERSION=$("$ETCD" --version | awk '/^etcd Version/ { print $3 }')
}

# publish_section MARKER SECTION: prints the markdown file SECTION and puts it into $OUT in
# place of the lines from `<!-- MARKER:begin` to `<!-- MARKER:end` (appended if there are none).
publish_section() {
  local marker=$1 section=$2
  echo
  cat "$section"
  mkdir -p "$(dirname "$OUT")"
  touch "$OUT"
  if grep -q "^<!-- $marker:begin" "$OUT"; then
    awk -v section="$section" -v begin="<!-- $marker:begin" -v end="<!-- $marker:end" '
      index($0, begin) == 1 { while ((getline line < section) > 0) print line; skip = 1; next }
      index($0, end) == 1 { skip = 0; next }
      !skip { print }
    ' "$OUT" >"$WORK/out.md"
  else
    { cat "$OUT"; if [[ -s $OUT ]]; then echo; fi; cat "$section"; } >"$WORK/out.md"
  fi
  cp "$WORK/out.md" "$OUT"
  log "results written to $OUT"
}
