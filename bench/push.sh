#!/bin/sh
# push.sh — the push benchmarks of issue 11 (docs/benchmarks.md "Push"):
# one event to 10,000 APNs devices, to 2,000 Web Push devices, and the RSS
# of 100,000 registered devices, against the stand-ins of tests/js, with a
# release herald (HERALD_BIN, default build/herald). The work is done by
# bench/push_bench.py, which starts and reaps every process it uses.
# and publish -> APNs latency at RATE/s (bench/apns_sink.js keeps arrival times).
# Usage: bench/push.sh [apns] [webpush] [memory] [latency]   (default: all four)
# Env: APNS_DEVICES (10000), WEBPUSH_DEVICES (2000), MEMORY_DEVICES (100000),
#      RATE (1000), LATENCY_SECS (5), APNS_MOCK=sink (the fan-out against
#      bench/apns_sink.js instead of tests/js/apns_mock.js), KEEP=1 (keep the scratch dir)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec python3 "$here/push_bench.py" "$@"
