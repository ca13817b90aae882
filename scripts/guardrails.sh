#!/usr/bin/env bash
# The CI guardrails, run by scripts/test.sh after the main build and tests (skip them with
# KVSYNC_GUARDRAILS=0). One stage, or all of them in this order:
#   scripts/guardrails.sh [tidy|tsan|asan]...
#   tidy  clang-tidy with the committed .clang-tidy over src/ and tools/, every finding an error,
#         plus clang's -Wthread-safety (the ABSL_GUARDED_BY annotations); needs the main build
#         in BUILD_DIR (compile_commands.json and the generated etcd protos)
#   tsan  clang ThreadSanitizer build (also -Wthread-safety -Werror) of kvsync, the unit tests
#         and the integration tests labelled `concurrency`, then those tests
#   asan  gcc AddressSanitizer + UndefinedBehaviorSanitizer build of the unit tests, then them
# The sanitizer builds go to build-tsan/ and build-asan/ (TSAN_BUILD_DIR, ASAN_BUILD_DIR) and
# compile through ccache like the main build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
TSAN_BUILD_DIR=${TSAN_BUILD_DIR:-$ROOT/build-tsan}
ASAN_BUILD_DIR=${ASAN_BUILD_DIR:-$ROOT/build-asan}
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$ROOT}
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(tidy tsan asan)

# Line tables are enough for sanitizer stack traces and much cheaper to build than full -g.
SANITIZER_FLAGS=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG")

# Names of the tests (= their targets) that a ctest label selection picks in a configured tree.
tests_matching() {
  local dir=$1; shift
  ctest --test-dir "$dir" -N "$@" | awk '$1 == "Test" && $2 ~ /^#/ { print $3 }'
}

stage_tidy() {
  echo "== guardrails: clang-tidy (.clang-tidy, -Wthread-safety; findings are errors)"
  [ -f "$BUILD_DIR/compile_commands.json" ] || { echo "tidy: build $BUILD_DIR first" >&2; exit 1; }
  local files
  mapfile -t files < <(git ls-files 'src/*.cc' 'tools/*.cc')
  # The generated etcd protos live in the build tree and are not in this list; the header filter
  # in .clang-tidy keeps their headers out too.
  run-clang-tidy -quiet -p "$BUILD_DIR" -j2 \
    -extra-arg=-Wthread-safety -extra-arg=-Wno-unknown-warning-option \
    "${files[@]/#/$ROOT/}" >"$BUILD_DIR/clang-tidy.log" 2>&1 || {
    grep -E 'error:|warning:' -A3 "$BUILD_DIR/clang-tidy.log" || tail -50 "$BUILD_DIR/clang-tidy.log"
    echo "clang-tidy: findings above (full log: $BUILD_DIR/clang-tidy.log)" >&2
    exit 1
  }
}

stage_tsan() {
  echo "== guardrails: ThreadSanitizer (clang, -Wthread-safety) build"
  CC=clang CXX=clang++ cmake -S . -B "$TSAN_BUILD_DIR" "${SANITIZER_FLAGS[@]}" \
    -DKVSYNC_SANITIZE=thread >/dev/null
  local targets
  mapfile -t targets < <(tests_matching "$TSAN_BUILD_DIR" -LE 'integration|deploy';
                         tests_matching "$TSAN_BUILD_DIR" -L concurrency)
  cmake --build "$TSAN_BUILD_DIR" -j2 --target kvsync "${targets[@]}"
  echo "== guardrails: unit tests and concurrency integration tests under ThreadSanitizer"
  # Every report fails the test (and a kvsync started by an integration test exits non-zero).
  # Reports go to files: the harness shows only the tail of a kvsync's stderr.
  local reports=$TSAN_BUILD_DIR/tsan-reports rc=0
  rm -rf "$reports" && mkdir -p "$reports"
  export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 log_path=$reports/report
    suppressions=$ROOT/tests/sanitizers/tsan.supp"
  ctest --test-dir "$TSAN_BUILD_DIR" --output-on-failure -j2 -LE 'integration|deploy' || rc=1
  ctest --test-dir "$TSAN_BUILD_DIR" --output-on-failure -L concurrency || rc=1
  if [ -n "$(ls -A "$reports")" ]; then
    echo "== guardrails: ThreadSanitizer reports"
    cat "$reports"/*
    rc=1
  fi
  return $rc
}

stage_asan() {
  echo "== guardrails: AddressSanitizer + UndefinedBehaviorSanitizer build of the unit tests"
  cmake -S . -B "$ASAN_BUILD_DIR" "${SANITIZER_FLAGS[@]}" -DKVSYNC_SANITIZE=address >/dev/null
  local targets
  mapfile -t targets < <(tests_matching "$ASAN_BUILD_DIR" -LE 'integration|deploy')
  cmake --build "$ASAN_BUILD_DIR" -j2 --target "${targets[@]}"
  echo "== guardrails: unit tests under ASan + UBSan"
  ASAN_OPTIONS="detect_leaks=1 strict_string_checks=1 detect_stack_use_after_return=1" \
  UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1" \
    ctest --test-dir "$ASAN_BUILD_DIR" --output-on-failure -j2 -LE 'integration|deploy'
}

for stage in "${stages[@]}"; do
  start=$SECONDS
  case "$stage" in
    tidy) stage_tidy ;;
    tsan) stage_tsan ;;
    asan) stage_asan ;;
    *) echo "guardrails: unknown stage $stage (tidy, tsan, asan)" >&2; exit 2 ;;
  esac
  echo "== guardrails: $stage took $((SECONDS - start)) s"
done
