#!/bin/sh
# A smoke scenario under valgrind's memcheck: herald (the release build)
# starts, takes publishes (single, batch, WebSocket), serves a read, a
# long-poll, an SSE stream and a WebSocket subscription, stops on SIGTERM,
# and valgrind must report no error and no leak.
# Usage: scripts/valgrind-smoke.sh [HERALD_BIN]   (default build/herald)
set -eu
cd "$(dirname "$0")/.."
BIN=${1:-build/herald}
command -v valgrind >/dev/null || { echo "valgrind-smoke: valgrind is missing"; exit 1; }
TMP=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill -9 $PID 2>/dev/null; rm -rf "$TMP"' EXIT
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
echo "valgrind-smoke: starting herald under memcheck on port $PORT"
valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
  --error-exitcode=99 --log-file="$TMP/vg.log" \
  "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$TMP/data" --ws-anonymous --publish anonymous \
  --log-level warn &
PID=$!
i=0; until curl -sf "$URL/healthz" >/dev/null; do
  i=$((i+1)); [ $i -lt 600 ] || { echo "valgrind-smoke: herald did not start"; cat "$TMP/vg.log"; exit 1; }
  sleep 0.1; done
echo "valgrind-smoke: running the scenario"
curl -sf -H 'Content-Type: application/json' -d '{"a":1}' "$URL/v1/topics/smoke/events" >/dev/null
curl -sf -H 'Content-Type: application/cloudevents-batch+json' \
  -d '[{"specversion":"1.0","id":"b1","source":"/s","type":"t"},{"specversion":"1.0","id":"b2","source":"/s","type":"t"}]' \
  "$URL/v1/topics/smoke/events" >/dev/null
curl -sf "$URL/v1/topics/smoke/events?after=0" | grep -q '"offset":3'
curl -sf "$URL/v1/topics/smoke/events?after=3&wait=1" >/dev/null
curl -s --max-time 2 "$URL/v1/topics/smoke/sse?after=0" | grep -q '^id: 3' 
EPOCH=$(curl -sf "$URL/v1/topics/smoke/events?after=0" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["epoch"])')
/usr/bin/python3 - "$PORT" "$EPOCH" <<'PY'
import asyncio, json, sys, websockets
async def go():
    async with websockets.connect(f"ws://127.0.0.1:{sys.argv[1]}/connection/websocket") as ws:
        # A recover past offset 0 needs the topic's epoch (docs/websocket.md).
        sub = {"channel": "smoke", "recover": True, "offset": 1, "epoch": sys.argv[2]}
        await ws.send('{"connect":{},"id":1}\n' + json.dumps({"subscribe": sub, "id": 2}))
        await ws.recv()
        sub = json.loads(await ws.recv())["subscribe"]
        assert sub["recovered"] and len(sub["publications"]) == 2, sub
        await ws.send('{"publish":{"channel":"smoke","data":{"b":2}},"id":3}')
        got = [json.loads(await ws.recv()) for _ in range(2)]
        assert any("push" in m for m in got) and any(m.get("id") == 3 for m in got), got
asyncio.run(asyncio.wait_for(go(), 60))
PY
curl -sf "$URL/metrics" >/dev/null
kill -TERM $PID
set +e
wait $PID
rc=$?
set -e
PID=
if [ $rc -ne 0 ] || [ -s "$TMP/vg.log" ]; then
  echo "valgrind-smoke: FAILED (exit $rc)"; cat "$TMP/vg.log"; exit 1
fi
echo "valgrind-smoke: no errors, no leaks"
