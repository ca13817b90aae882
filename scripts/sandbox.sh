#!/usr/bin/env bash
# The quick start: installs what is needed, builds kvsync, starts two etcd clusters on loopback
# ("city A" primary and "city B" standby), runs a sample service-registry workload against
# the primary and `kvsync etcd2etcd` syncing it live to the standby with a progress/lag line.
# Ctrl-C (or --duration N) stops the workload, lets kvsync catch up, prints a consistency
# summary and tears everything down. --drill then plays the disaster-recovery day: the primary
# city goes dark, `kvsync status`, `kvsync promote --force` with its RPO figure, the dead
# providers' registrations expiring while a live one keeps its lease, the primary back, and
# `kvsync failback` with the writes the standby never saw.
# Beside it (unless --no-zk) a ZooKeeper with a small Dubbo-like tree under /dubbo, changing,
# and `kvsync zk2etcd` migrating it into the primary etcd; the summary adds the per-service
# parity (`kvsync check zk2etcd --by-service`) beside the etcd2etcd consistency summary.
# --migration then walks the migration's phases: `kvsync migrate --to dual`, `kvsync etcd2zk`
# publishing a provider that registered in etcd only into ZooKeeper, `--to etcd-primary` once
# parity holds (zk2etcd stops), `kvsync status` showing the phase, and one step back to dual.
#   scripts/sandbox.sh [--duration SECONDS] [--drill] [--migration] [--no-zk] [--no-setup]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
DURATION=0
SETUP=1
DRILL=0
ZK=1
MIGRATION=0
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --no-setup) SETUP=0; shift ;;
    --drill) DRILL=1; shift ;;
    --no-zk) ZK=0; shift ;;
    --migration) MIGRATION=1; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
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

declare -A CLIENT_PORT PEER_PORT ETCD_PID
start_etcd() {  # name [existing] -> sets ENDPOINT; a restart keeps its ports and data
  local name=$1 client peer
  if [ -n "${CLIENT_PORT[$name]:-}" ]; then
    client=${CLIENT_PORT[$name]}; peer=${PEER_PORT[$name]}
  else
    client=$(free_port); peer=$(free_port)
    CLIENT_PORT[$name]=$client; PEER_PORT[$name]=$peer
  fi
  etcd --name "$name" --data-dir "$WORK/$name" \
    --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "$name=http://127.0.0.1:$peer" --initial-cluster-token "$name-$$" \
    >>"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  ETCD_PID[$name]=$!
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
# The drill is about etcd2etcd: it runs without ZooKeeper. The migration needs ZooKeeper.
[ "$DRILL" = 0 ] || ZK=0
if [ "$MIGRATION" = 1 ] && [ "$ZK" = 0 ]; then
  echo "sandbox: --migration needs ZooKeeper (not with --no-zk or --drill)" >&2; exit 2
fi

srvr() {  # port -> ZooKeeper's srvr reply
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && echo srvr >&3 && cat <&3" 2>/dev/null || true
}
if [ "$ZK" = 1 ]; then
  # One ZooKeeper server with a Dubbo-like tree: 8 services of 4 providers each.
  ZK_PORT=$(free_port)
  mkdir -p "$WORK/zk/data"
  printf '%s\n' "tickTime=500" "dataDir=$WORK/zk/data" "clientPort=$ZK_PORT" \
    "clientPortAddress=127.0.0.1" "admin.enableServer=false" "4lw.commands.whitelist=srvr" \
    >"$WORK/zk/zoo.cfg"
  java -Xmx256m -Dzookeeper.admin.enableServer=false \
    -cp /usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar \
    org.apache.zookeeper.server.ZooKeeperServerMain "$WORK/zk/zoo.cfg" >>"$WORK/zk.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 300); do
    if srvr "$ZK_PORT" | grep -q Mode:; then break; fi
    sleep 0.1
  done
  srvr "$ZK_PORT" | grep -q Mode: ||
    { echo "sandbox: ZooKeeper did not start; its log:" >&2; tail -20 "$WORK/zk.log" >&2; exit 1; }
  ZK_SERVERS=127.0.0.1:$ZK_PORT
  "$BENCH" zk-load --zk-servers "$ZK_SERVERS" --root /dubbo --services 8 --providers 4 \
    --name-bytes 120 >"$WORK/zk-load.log" 2>&1
  echo "sandbox: ZooKeeper at $ZK_SERVERS (/dubbo: 8 services), migrated by kvsync zk2etcd into city A"
  ZK_TASK=(--zk-servers "$ZK_SERVERS" --zk-prefix /dubbo --etcd-endpoints "$SRC" --log-format text)
  "$KVSYNC" zk2etcd "${ZK_TASK[@]}" --admin-addr "" --status-interval 0 --fullsync-interval 2s \
    >"$WORK/zk2etcd.log" 2>&1 &
  ZK2ETCD_PID=$!
  PIDS+=($ZK2ETCD_PID)
fi

# Some registrations exist before kvsync starts: they arrive by the full sync.
"$BENCH" workload --endpoints "$SRC" --prefix /registry/ --services 10 --rate 200 --seconds 1 \
  >"$WORK/preload.log" 2>&1

"$BENCH" workload --endpoints "$SRC" --prefix /registry/ --services 20 --rate 50 \
  >"$WORK/workload.log" 2>&1 &
WORKLOAD=$!
PIDS+=($WORKLOAD)

LEASE_FLAGS=()
if [ "$DRILL" = 1 ]; then
  # Three providers registered with 10 s leases at the primary, kept alive by etcdctl; two will
  # die with the primary's city, one moves to the standby with its lease ID. A 0 s floor makes
  # the dead ones expire at the promoted cluster after their own TTL (default floor: 60 s).
  E="etcdctl --endpoints $SRC"
  declare -A LEASE KEEPALIVE
  for p in dead-1 dead-2 live-1; do
    LEASE[$p]=$(ETCDCTL_API=3 $E lease grant 10 | awk '{print $2}')
    ETCDCTL_API=3 $E put --lease="${LEASE[$p]}" "/registry/providers/$p" "10.0.0.1:20880" >/dev/null
    ETCDCTL_API=3 $E lease keep-alive "${LEASE[$p]}" >/dev/null 2>&1 &
    PIDS+=($!)
    KEEPALIVE[$p]=$!
  done
  LEASE_FLAGS=(--lease-min-ttl 0s --progress-interval 1s)
  [ "$DURATION" -gt 0 ] || DURATION=10
fi

"$KVSYNC" etcd2etcd --src-endpoints "$SRC" --dst-endpoints "$DST" --prefix /registry/ \
  --name sandbox --log-format text --status-interval 2s "${LEASE_FLAGS[@]}" &
KVSYNC_PID=$!
PIDS+=($KVSYNC_PID)
if [ "$ZK" = 1 ]; then
  # Providers come and go and configurations change in ZooKeeper while the sandbox runs.
  "$BENCH" zk-churn --zk-servers "$ZK_SERVERS" --root /dubbo --etcd-endpoints "$SRC" --rate 20 \
    --duration 86400 --settle 0 --inflight 2 --name-bytes 120 --min-age-ms 500 \
    >"$WORK/zk-churn.log" 2>&1 &
  ZK_CHURN=$!
  PIDS+=($ZK_CHURN)
fi

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
if [ "$ZK" = 1 ]; then
  kill -TERM $ZK_CHURN 2>/dev/null || true
  wait $ZK_CHURN 2>/dev/null || true
  kill -0 $ZK2ETCD_PID 2>/dev/null ||
    { echo "sandbox: kvsync zk2etcd exited unexpectedly; its log:" >&2; tail -20 "$WORK/zk2etcd.log" >&2; exit 1; }
fi
if ! kill -0 $KVSYNC_PID 2>/dev/null; then
  echo "sandbox: kvsync exited unexpectedly" >&2; exit 1
fi
if [ "$DRILL" = 1 ]; then
  drill() { echo; echo "== drill: $*"; }
  TASK=(--src-endpoints "$SRC" --dst-endpoints "$DST" --prefix /registry/ --name sandbox
        --log-format text)
  drill "the primary city goes dark (etcd and its providers killed)"
  kill -9 "${ETCD_PID[city-a]}" "${KEEPALIVE[dead-1]}" "${KEEPALIVE[dead-2]}" "${KEEPALIVE[live-1]}"
  wait "${ETCD_PID[city-a]}" "${KEEPALIVE[dead-1]}" "${KEEPALIVE[dead-2]}" "${KEEPALIVE[live-1]}" 2>/dev/null || true
  drill "kvsync status (the standby, read from its own records)"
  "$KVSYNC" status --dst-endpoints "$DST" --log-format text || true
  drill "kvsync promote --force: the RPO figure"
  "$KVSYNC" promote "${TASK[@]}" --force
  ETCDCTL_API=3 etcdctl --endpoints "$DST" lease keep-alive "${LEASE[live-1]}" >/dev/null 2>&1 &
  PIDS+=($!)
  wait $KVSYNC_PID 2>/dev/null || echo "sandbox: the running mirror stopped, fenced by the promotion (exit $?)"
  drill "providers at the promoted cluster (dead ones expire after their TTL; live-1 keeps its lease)"
  ETCDCTL_API=3 etcdctl --endpoints "$DST" get --prefix /registry/providers/ --keys-only | grep . || true
  for _ in $(seq 1 300); do
    dead=$(ETCDCTL_API=3 etcdctl --endpoints "$DST" get --prefix /registry/providers/dead --keys-only)
    [ -n "$dead" ] || break
    sleep 0.1
  done
  echo "after the TTL:"
  ETCDCTL_API=3 etcdctl --endpoints "$DST" get --prefix /registry/providers/ --keys-only | grep . || true
  [ -z "$dead" ] || { echo "sandbox: the dead providers' registrations did not expire" >&2; exit 1; }
  drill "the primary is back, with writes the standby never saw: kvsync failback --lost-writes"
  ETCDCTL_API=3 etcdctl --endpoints "$DST" put /registry/drill/written-while-promoted y >/dev/null
  start_etcd city-a
  # Stand-ins for the writes the primary took in its last moments that never left its city.
  for i in 1 2 3; do
    ETCDCTL_API=3 etcdctl --endpoints "$SRC" put "/registry/drill/never-replicated-$i" x >/dev/null
  done
  "$KVSYNC" failback "${TASK[@]}" --lost-writes "$WORK/lost-writes.jsonl" --admin-addr "" \
    --status-interval 0 >"$WORK/failback.log" 2>&1 &
  FAILBACK=$!
  PIDS+=($FAILBACK)
  consistent=0
  for _ in $(seq 1 600); do
    if "$KVSYNC" check etcd2etcd --src-endpoints "$DST" --dst-endpoints "$SRC" --prefix /registry/ \
      --name sandbox-failback --single-round --log-format text >"$WORK/failback-check.txt" 2>&1; then
      consistent=1; break
    fi
    sleep 0.2
  done
  echo "writes the standby never saw ($WORK/lost-writes.jsonl):"
  cat "$WORK/lost-writes.jsonl" 2>/dev/null || true
  echo "the old primary vs the promoted cluster:"
  cat "$WORK/failback-check.txt"
  kill -TERM $FAILBACK; wait $FAILBACK || true
  [ $consistent = 1 ] || { echo "sandbox: failback did not make the old primary equal" >&2; exit 1; }
  drill "done: the standby is primary; \`kvsync promote --reverse\` would switch back (docs/runbook.md)"
  exit 0
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
if [ "$ZK" = 1 ]; then
  echo
  echo "== per-service parity (ZooKeeper /dubbo vs etcd city A, migrated by kvsync zk2etcd)"
  # The check confirms each difference in a second round, so changes still in flight when it
  # starts are not reported; a few tries cover a last churn write arriving late.
  parity=1
  for _ in 1 2 3; do
    if "$KVSYNC" check zk2etcd "${ZK_TASK[@]}" --by-service >"$WORK/parity.txt" 2>&1; then
      parity=0; break
    fi
  done
  cat "$WORK/parity.txt"
  [ $parity = 0 ] || { echo "sandbox: ZooKeeper and etcd differ" >&2; exit 1; }
  if [ "$MIGRATION" = 1 ]; then
    phase() { echo; echo "== migration: $*"; }
    migrate() { "$KVSYNC" migrate "${ZK_TASK[@]}" "$@"; }
    phase "record the start, then dual: both directions (checked: no confirmed difference)"
    migrate --to mirroring
    migrate --to dual
    "$KVSYNC" etcd2zk "${ZK_TASK[@]}" --admin-addr "" --status-interval 0 \
      >"$WORK/etcd2zk.log" 2>&1 &
    ETCD2ZK_PID=$!
    PIDS+=($ETCD2ZK_PID)
    phase "a provider of Service0 registers in etcd only; etcd2zk publishes it into ZooKeeper"
    MIGRATED=/dubbo/com.example.Service0/providers/dubbo%3A%2F%2F10.9.9.9%3A20880%2Fcom.example.Service0%3Fside%3Dprovider
    ETCDCTL_API=3 etcdctl --endpoints "$SRC" put "$MIGRATED" "" >/dev/null
    echo "etcd: $MIGRATED"
    phase "etcd-primary (checked: full parity, so it waits for etcd2zk's znode); zk2etcd stops"
    moved=0
    for _ in $(seq 1 120); do
      if migrate --to etcd-primary >"$WORK/migrate.txt" 2>&1; then moved=1; break; fi
      sleep 0.5
    done
    cat "$WORK/migrate.txt"
    [ $moved = 1 ] || { echo "sandbox: etcd2zk did not publish the etcd-only provider; its log:" >&2
                        tail -20 "$WORK/etcd2zk.log" >&2; exit 1; }
    "$KVSYNC" check zk2etcd "${ZK_TASK[@]}" --by-service 2>&1 | grep -E '^SERVICE|Service0 ' || true
    # zk2etcd reads the phase at its next full sync (--fullsync-interval 2s) and exits 2.
    for _ in $(seq 1 300); do kill -0 $ZK2ETCD_PID 2>/dev/null || break; sleep 0.2; done
    code=0
    kill -0 $ZK2ETCD_PID 2>/dev/null && code=running || wait $ZK2ETCD_PID || code=$?
    [ $code = 2 ] || { echo "sandbox: zk2etcd did not stop for etcd-primary (exit $code)" >&2; exit 1; }
    echo "kvsync zk2etcd stopped: $(grep -o 'phase etcd-primary[^"]*' "$WORK/zk2etcd.log" | tail -1)"
    "$KVSYNC" status --dst-endpoints "$SRC" --log-format text | grep migration || true
    phase "one step back (possible until done, the point of no return): dual again"
    migrate --to dual
    echo "restart kvsync zk2etcd to resume the forward direction (docs/runbook.md)"
    kill -TERM $ETCD2ZK_PID
    wait $ETCD2ZK_PID || { echo "sandbox: kvsync etcd2zk exited with an error" >&2; exit 1; }
  else
    kill -TERM $ZK2ETCD_PID
    wait $ZK2ETCD_PID || { echo "sandbox: kvsync zk2etcd exited with an error" >&2; exit 1; }
  fi
fi
