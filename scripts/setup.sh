#!/usr/bin/env bash
# Installs every Debian package that kvsync's build, tests, sandbox and benchmarks need.
# Idempotent: packages already present are left alone; safe to run on every invocation.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git ccache
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libspdlog-dev libfmt-dev libcli11-dev libyaml-cpp-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  golang-etcd-server-dev etcd-server etcd-client
  procps time openssl curl clang-format prometheus
  zookeeper libzookeeper-st-dev redis-server libssl-dev default-jre-headless
  # The guardrails (scripts/guardrails.sh): clang's ThreadSanitizer runtime and -Wthread-safety,
  # clang-tidy, llvm-symbolizer for sanitizer stack traces. gcc's ASan/UBSan come with g++.
  clang libclang-rt-14-dev clang-tidy llvm
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian starts packaged daemons on install; kvsync's tests start their own on free ports.
for svc in etcd prometheus redis-server zookeeper; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" >/dev/null 2>&1 || true
  fi
done
