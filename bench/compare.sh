#!/usr/bin/env bash
# Two builds of kvsync side by side in one run: the same benchmark scripts (this tree's) run
# against a Release build of --old and one of --new, one after the other, so a refactoring can
# show it did not regress. Writes both results sections, with the exact commands, to --out.
#
# Usage: bench/compare.sh --old REV [--new REV] [--keys N] [--zk-sizes N,M] [--lag-seconds T]
#                         [--out FILE]
#   --old / --new   git revisions (--new defaults to HEAD); each is checked out into a
#                   temporary worktree and built Release (ccache makes rebuilds cheap)
#   --keys          etcd2etcd keys (default 100000); --zk-sizes: zk2etcd sizes (default 100000)
#   --out           default /tmp/kvsync-compare.md
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OLD="" NEW=HEAD KEYS=100000 ZK_SIZES=100000 LAG=10 OUT=/tmp/kvsync-compare.md
die_usage() { echo "compare.sh: $1" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --old) OLD=${2:-}; shift 2 ;;
    --new) NEW=${2:-}; shift 2 ;;
    --keys) [[ ${2:-} =~ ^[0-9]+$ ]] || die_usage "--keys needs an integer"; KEYS=$2; shift 2 ;;
    --zk-sizes) [[ ${2:-} =~ ^[0-9]+(,[0-9]+)*$ ]] || die_usage "--zk-sizes needs integers"; ZK_SIZES=$2; shift 2 ;;
    --lag-seconds) [[ ${2:-} =~ ^[0-9]+$ ]] || die_usage "--lag-seconds needs an integer"; LAG=$2; shift 2 ;;
    --out) OUT=${2:-}; shift 2 ;;
    *) die_usage "unknown flag $1 (see the header of bench/compare.sh)" ;;
  esac
done
[[ -n $OLD ]] || die_usage "--old REV is required"
old_rev=$(git rev-parse --short "$OLD") || die_usage "unknown revision $OLD"
new_rev=$(git rev-parse --short "$NEW") || die_usage "unknown revision $NEW"

work=$(mktemp -d /tmp/kvsync-compare.XXXXXX)
cleanup() {
  for side in old new; do git worktree remove --force "$work/$side" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

build() { # side rev
  git worktree add --detach "$work/$1" "$2" >/dev/null
  CCACHE_BASEDIR="$work/$1" cmake -S "$work/$1" -B "$work/$1/build" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release >/dev/null
  CCACHE_BASEDIR="$work/$1" ninja -C "$work/$1/build" -j2 kvsync kvsync-bench >/dev/null
  echo "built $1 ($2)"
}
build old "$old_rev"
build new "$new_rev"

{
  echo "# kvsync $old_rev (old) and $new_rev (new), side by side"
  echo
  echo "\`bench/compare.sh --old $old_rev --new $new_rev --keys $KEYS --zk-sizes $ZK_SIZES --lag-seconds $LAG\`"
  echo "on $(date -u +%Y-%m-%d), $(nproc) cores; each benchmark ran old then new, back to back."
} >"$OUT"
for bench in etcd2etcd zk2etcd; do
  for side in old new; do
    part="$work/$bench-$side.md"
    echo "== $bench, $side build"
    if [[ $bench == etcd2etcd ]]; then
      BUILD_DIR="$work/$side/build" bash bench/etcd2etcd.sh --keys "$KEYS" --rss-keys 0 \
        --lag-seconds "$LAG" --no-build --out "$part" >/dev/null
    else
      BUILD_DIR="$work/$side/build" bash bench/zk2etcd.sh --sizes "$ZK_SIZES" \
        --lag-seconds "$LAG" --idle-rounds 1 --no-build --out "$part" >/dev/null
    fi
    { echo; echo "## $bench: $side build ($([[ $side == old ]] && echo "$old_rev" || echo "$new_rev"))"; echo
      sed -n '/results:begin/,/results:end/p' "$part" | grep -v 'results:\(begin\|end\)'; } >>"$OUT"
  done
done
echo "results: $OUT"
