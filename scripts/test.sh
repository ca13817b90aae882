#!/usr/bin/env bash
# The whole test suite from a fresh Debian 12 machine: installs packages, checks formatting,
# builds, runs unit tests and the integration tests (real etcd servers on loopback), then a
# short non-interactive run of the sandbox quick start, then the guardrails (scripts/guardrails.sh:
# clang-tidy, a ThreadSanitizer run, an ASan/UBSan run).
#   BUILD_DIR=build (cached between runs)   KVSYNC_SANITIZE=address|thread for a sanitizer build
#   KVSYNC_GUARDRAILS=0 skips the guardrails (they are on by default, and always on in CI)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
# ccache (when installed) shares compilations between clones: paths relative to the clone.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$ROOT}

bash scripts/setup.sh

echo "== format check"
files=$(git ls-files 'src/*.cc' 'src/*.h' 'tests/*.cc' 'tests/*.h' 'tools/*.cc' 'tools/*.h' 2>/dev/null || true)
if [ -n "$files" ]; then
  # shellcheck disable=SC2086
  clang-format --dry-run --Werror $files
fi

echo "== dependency check (includes agree with each folder README)"
bash scripts/check_deps.sh

echo "== build"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DKVSYNC_SANITIZE="${KVSYNC_SANITIZE:-OFF}" >/dev/null
cmake --build "$BUILD_DIR" -j2

echo "== sandbox smoke run (the README's first command, non-interactive, with --migration)"
BUILD_DIR="$BUILD_DIR" bash scripts/sandbox.sh --duration 8 --migration --no-setup
echo "== sandbox drill (the disaster-recovery day: promote --force, failback)"
BUILD_DIR="$BUILD_DIR" bash scripts/sandbox.sh --duration 3 --drill --no-setup

echo "== unit and integration tests (integration tests start real etcd servers, one at a time)"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j2

if [ "${KVSYNC_GUARDRAILS:-1}" != 0 ]; then
  BUILD_DIR="$BUILD_DIR" bash scripts/guardrails.sh
fi
