#!/usr/bin/env bash
# The quick start: installs what is needed, builds kvsync, starts two etcd clusters on loopback
# ("city A" primary and "city B" standby), runs a sample service-registry workload against
# the primary and `kvsync etcd2etcd` syncing it live to the standby with a progress/lag line.
# Ctrl-C (or --duration N) stops the workload, lets kvsync catch up, prints a consistency
# summary and tears everything down.
#   scripts/sandbox.sh [--duration SECONDS] [--no-setup]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
DURATION=0
SETUP=1
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --no-setup) SETUP=0; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "sandbox: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ "$SETUP" = 1 ]; then
  bash scripts/setup.sh
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD_DIR" -j2 --target kvsync kvsync-bench
fi
KVSYNC=$BUILD_DIR/src/cli/kvsync
BENCH=$BUILD_DIR/tools/kvsync-bench

WORK=$(mktemp -d /tmp/kvsync-sandbox.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  local port
  while true; do
    port=$((20000 + RANDOM % 40000))
    if ! (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
}

start_etcd() {  # name -> sets ENDPOINT
  local name=$1 client peer
  client=$(free_port); peer=$(free_port)
  etcd --name "$name" --data-dir "$WORK/$name" \
    --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "$name=http://127.0.0.1:$peer" --initial-cluster-token "$name-$$" \
    >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  ENDPOINT=127.0.0.1:$client
  for _ in $(seq 1 100); do
    if ETCDCTL_API=3 etcdctl --endpoints "$ENDPOINT" endpoint health >/dev/null 2>&1; then return; fi
    sleep 0.1
  done
  echo "sandbox: etcd $name did not start; its log:" >&2; tail -20 "$WORK/$name.log" >&2; exit 1
}

start_etcd city-a; SRC=$ENDPOINT
start_etcd city-b; DST=$ENDPOINT
echo "sandbox: primary etcd (city A) at $SRC, standby etcd (city B) at $DST"
echo "sandbox: work dir $WORK"

# Some registrations exist before kvsync starts: they arrive by the full sync.
"$BENCH" workload --endpoints "$SRC" --prefix /registry/ --services 10 --rate 200 --seconds 1 \
  >"$WORK/preload.log" 2>&1

"$BENCH" workload --endpoints "$SRC" --prefix /registry/ --services 20 --rate 50 \
  >"$WORK/workload.log" 2>&1 &
WORKLOAD=$!
PIDS+=($WORKLOAD)

"$KVSYNC" etcd2etcd --src-endpoints "$SRC" --dst-endpoints "$DST" --prefix /registry/ \
  --name sandbox --log-format text --status-interval 2s &
KVSYNC_PID=$!
PIDS+=($KVSYNC_PID)

stop=0
trap 'stop=1' INT TERM
if [ "$DURATION" -gt 0 ]; then
  end=$((SECONDS + DURATION))
  while [ $stop = 0 ] && [ $SECONDS -lt $end ] && kill -0 $KVSYNC_PID 2>/dev/null; do sleep 0.2; done
else
  echo "sandbox: syncing; press Ctrl-C to stop and see the consistency summary"
  while [ $stop = 0 ] && kill -0 $KVSYNC_PID 2>/dev/null; do sleep 0.2; done
fi
trap - INT TERM

kill -TERM $WORKLOAD 2>/dev/null || true
wait $WORKLOAD 2>/dev/null || true
if ! kill -0 $KVSYNC_PID 2>/dev/null; then
  echo "sandbox: kvsync exited unexpectedly" >&2; exit 1
fi

# Let kvsync apply the last changes: wait until its checkpoint reaches the source revision.
src_rev=$(ETCDCTL_API=3 etcdctl --endpoints "$SRC" endpoint status -w json | grep -o '"revision":[0-9]*' | head -1 | cut -d: -f2)
for _ in $(seq 1 100); do
  cp=$(ETCDCTL_API=3 etcdctl --endpoints "$DST" get /kvsync/meta/sandbox/checkpoint --print-value-only |
       grep -o '"revision":[0-9]*' | cut -d: -f2 || true)
  [ -n "$cp" ] && [ "$cp" -ge "$src_rev" ] && break
  sleep 0.1
done
kill -TERM $KVSYNC_PID
wait $KVSYNC_PID || { echo "sandbox: kvsync exited with an error" >&2; exit 1; }

echo
echo "== consistency summary (source city A vs standby city B, prefix /registry/)"
echo "source revision $src_rev, kvsync checkpoint ${cp:-none}"
"$KVSYNC" check etcd2etcd --src-endpoints "$SRC" --dst-endpoints "$DST" --prefix /registry/ \
  --log-format text || { echo "sandbox: the standby differs from the primary" >&2; exit 1; }
