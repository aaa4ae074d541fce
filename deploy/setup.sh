#!/usr/bin/env bash
# Installs what a fresh Debian bookworm machine lacks (apt), then configures and builds shardmq
# into ./build. Safe to run again: it installs only missing packages and rebuilds incrementally.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  librocksdb-dev libssl-dev openssl prometheus-cpp-dev libgtest-dev libgmock-dev
  libboost-dev libboost-system-dev libxxhash-dev libabsl-dev libjemalloc-dev
  mosquitto mosquitto-clients python3 python3-paho-mqtt python3-pytest
  etcd-server etcd-client prometheus curl
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # Debian starts the packaged mosquitto/etcd/prometheus services; the tests start their own.
  for svc in mosquitto etcd prometheus prometheus-node-exporter; do
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
  done
fi

BUILD_TYPE=${SHARDMQ_BUILD_TYPE:-RelWithDebInfo}
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" >/dev/null
cmake --build build -j"$(nproc)"
