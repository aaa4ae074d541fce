#!/usr/bin/env bash
# Sets up (deploy/setup.sh) and starts a single-node broker: MQTT on 127.0.0.1:1883, admin HTTP
# (/livez, /readyz, /metrics) on 127.0.0.1:8080, data in ./data. Extra arguments go to shardmq.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
exec ./build/broker/shardmq serve --data-dir ./data "$@"
