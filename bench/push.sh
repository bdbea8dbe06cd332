#!/bin/sh
# push.sh — the push benchmarks of issue 11 (docs/benchmarks.md "Push"):
# one event to 10,000 APNs devices, to 2,000 Web Push devices, and the RSS
# of 100,000 registered devices, against the stand-ins of tests/js, with a
# release herald (HERALD_BIN, default build/herald). The work is done by
# bench/push_bench.py, which starts and reaps every process it uses.
# Usage: bench/push.sh [apns] [webpush] [memory]   (default: all three)
# Env: APNS_DEVICES (10000), WEBPUSH_DEVICES (2000), MEMORY_DEVICES (100000)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec python3 "$here/push_bench.py" "$@"
