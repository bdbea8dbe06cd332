"""A small Centrifugo-protocol (v2, JSON) client over python3-websockets for
the end-to-end tests, and HS256 token minting. Every wait is bounded."""
import asyncio
import base64
import hashlib
import hmac
import json
import time

import websockets

SECRET = "test-secret-for-herald-e2e"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(sub="", secret=SECRET, alg="HS256", **claims):
    """A compact JWS with the given claims (exp etc. passed as keywords)."""
    header = {"alg": alg, "typ": "JWT"}
    payload = dict(claims)
    if sub is not None:
        payload["sub"] = sub
    signing = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
    if alg == "none":
        return signing + "."
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    sig = hmac.new(secret.encode(), signing.encode(), digest).digest()
    return signing + "." + b64url(sig)


def ws_url(h):
    return f"ws://127.0.0.1:{h.port}/connection/websocket"


class Closed(Exception):
    def __init__(self, code, reason):
        super().__init__(f"closed {code} {reason!r}")
        self.code = code
        self.reason = reason


class Client:
    """One connection. Replies are matched by id; pushes and pings are kept
    in order in self.pushes / counted in self.pings."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.replies = {}
        self.pushes = []
        self.pings = 0
        self.answer_pings = True

    @classmethod
    async def open(cls, h, **kw):
        ws = await asyncio.wait_for(websockets.connect(ws_url(h), max_size=64 << 20, **kw), 10)
        return cls(ws)

    async def send_raw(self, text):
        await self.ws.send(text)

    async def send(self, *cmds):
        """Sends commands (dicts of one method each) in one frame; returns their ids."""
        ids, lines = [], []
        for c in cmds:
            c = dict(c)
            if "id" not in c:
                self.next_id += 1
                c["id"] = self.next_id
            ids.append(c["id"])
            lines.append(json.dumps(c, separators=(",", ":")))
        await self.ws.send("\n".join(lines))
        return ids

    async def _recv_one(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise asyncio.TimeoutError()
        try:
            frame = await asyncio.wait_for(self.ws.recv(), left)
        except websockets.ConnectionClosed as e:
            raise Closed(e.code, e.reason) from None
        assert isinstance(frame, str), f"binary frame from herald: {frame!r}"
        assert "\n" not in frame.strip() or all(line for line in frame.strip().split("\n"))
        for line in frame.strip().split("\n"):
            msg = json.loads(line)
            if msg.get("id"):
                self.replies[msg["id"]] = msg
            elif "push" in msg:
                self.pushes.append(msg["push"])
            else:
                assert msg == {}, msg
                self.pings += 1
                if self.answer_pings:
                    await self.ws.send("{}")

    async def reply(self, id_, timeout=5.0):
        deadline = time.monotonic() + timeout
        while id_ not in self.replies:
            await self._recv_one(deadline)
        return self.replies.pop(id_)

    async def call(self, cmd, timeout=5.0):
        (id_,) = await self.send(cmd)
        return await self.reply(id_, timeout)

    async def push(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not self.pushes:
            await self._recv_one(deadline)
        return self.pushes.pop(0)

    async def pubs(self, n, timeout=5.0, channel=None):
        """The next n publication pushes (of channel if given)."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            p = await self.push(max(left, 0.001))
            if "pub" in p and (channel is None or p.get("channel") == channel):
                out.append(p)
        return out

    async def closed(self, timeout=5.0):
        """Waits for the server to close; returns (code, reason)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                await self._recv_one(deadline)
        except Closed as c:
            return c.code, c.reason

    async def quiet(self, seconds):
        """Reads for `seconds`, asserting no publication arrives."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                await self._recv_one(deadline)
                assert not any("pub" in p for p in self.pushes), self.pushes
        except asyncio.TimeoutError:
            pass

    async def close(self):
        await self.ws.close()


async def connect(h, sub="u1", subs=None, tok=None, **kw):
    """Opens and connects; returns (client, connect result)."""
    c = await Client.open(h, **kw)
    cmd = {"token": tok if tok is not None else token(sub)}
    if subs:
        cmd["subs"] = subs
    r = await c.call({"connect": cmd})
    assert "connect" in r, r
    return c, r["connect"]


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))
