"""A page for headless Chromium, served by the test: the page takes commands
(GET /cmd, held until one is queued; a string is sent as text, anything else
as JSON) and reports what it sees (POST with a JSON body, in order). Also
serves extra files (the SDK bundles). Used by test_browser.py and
test_browser_sdk.py."""
import http.server
import json
import queue
import shutil
import subprocess
import threading
import time

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class PageServer:
    """Serves page (HTML text) and files ({path: (bytes, content type)}),
    hands out commands and collects reports. noop is what /cmd answers when
    no command came within 20 s (the page asks again)."""

    def __init__(self, page, files=None, noop="noop"):
        self.cmds = queue.Queue()
        self.reports = queue.Queue()
        self.backlog = []
        page = page.encode()
        files = files or {}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, body, ctype="text/plain"):
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/":
                    self._send(page, "text/html; charset=utf-8")
                elif self.path in files:
                    self._send(*files[self.path])
                elif self.path == "/cmd":
                    try:
                        cmd = outer.cmds.get(timeout=20)
                    except queue.Empty:
                        cmd = noop
                    if isinstance(cmd, str):
                        self._send(cmd.encode())
                    else:
                        self._send(json.dumps(cmd).encode(), "application/json")
                else:
                    self.send_error(404)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                outer.reports.put(json.loads(self.rfile.read(n)))
                self._send(b"ok")

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def expect(self, pred, timeout=15.0, what="report"):
        """The first report (in arrival order) matching pred; reports that
        do not match stay for later calls."""
        for i, m in enumerate(self.backlog):
            if pred(m):
                return self.backlog.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            try:
                m = self.reports.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                raise AssertionError(f"timed out waiting for {what}; have {self.backlog}")
            if pred(m):
                return m
            self.backlog.append(m)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


def chromium(url, profile):
    """Headless Chromium showing url with its own profile directory; the
    caller kills and waits for it."""
    return subprocess.Popen([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
                             "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}", url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
