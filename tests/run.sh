#!/usr/bin/env bash
# Sets up (deploy/setup.sh) and runs every test: unit and integration (real broker processes,
# mosquitto_pub/sub and paho clients on 127.0.0.1). CI runs this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
cd build
ctest --output-on-failure -j"$(nproc)" --timeout 900
