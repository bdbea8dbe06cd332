#!/bin/sh
# push.sh — the push benchmarks of issue 11 (docs/benchmarks.md "Push"),
# with a release herald (HERALD_BIN, default build/herald) against the
# provider stand-ins of tests/js: one event to 10,000 APNs devices, one to
# 2,000 Web Push devices, the RSS of 100,000 registered devices, and
# publish -> APNs latency at 1,000 events/s (bench/apns_sink.js keeps the
# arrival times). The work is done by bench/push_bench.py, which starts
# every process on free loopback ports with a scratch directory and kills
# and reaps them on exit; it prints a Markdown table.
# Usage: bench/push.sh [apns] [webpush] [memory] [latency]   (default: all four)
# Env: APNS_DEVICES (10000), WEBPUSH_DEVICES (2000), MEMORY_DEVICES (100000),
#      RATE (1000), LATENCY_SECS (5), APNS_MOCK=sink (the APNs fan-out against
#      bench/apns_sink.js instead of tests/js/apns_mock.js), WEBPUSH_MOCK=sink
#      (the Web Push fan-out against bench/webpush_sink.js instead of
#      tests/js/webpush_mock.js), KEEP=1 (keep the scratch directory).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# /usr/bin/python3: the Debian one the tests use (a pyenv python3 first on
# PATH hung in multiprocessing.Pool here).
exec /usr/bin/python3 "$here/push_bench.py" "$@"
