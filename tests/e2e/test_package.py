"""Install and run as a service: `make install` (DESTDIR, PREFIX), the
Debian package of `make deb` (scripts/make-deb.sh, dpkg-deb, offline), the
systemd unit's sandboxing, and `herald check-config`.

The package is built from the binary under test, unpacked into a scratch
root with dpkg-deb -x (never installed into this system), its binary is
started, answers /healthz to curl, stops cleanly, and the root is removed.
"""
import json
import os
import re
import shutil
import signal
import subprocess

import pytest

from conftest import BIN, ROOT, free_port, per_test_timeout, stop_process, wait_for

_timeout = per_test_timeout(120)

SANDBOX = ["DynamicUser=yes", "ProtectSystem=strict", "StateDirectory=herald", "ProtectHome=yes",
           "NoNewPrivileges=yes", "PrivateTmp=yes", "LimitNOFILE="]


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=60, **kw)


@pytest.fixture
def deb(tmp_path):
    r = run([os.path.join(ROOT, "scripts", "make-deb.sh"), BIN, str(tmp_path / "out")])
    assert r.returncode == 0, r.stderr
    path = r.stdout.strip().splitlines()[-1]
    assert os.path.isfile(path) and path.endswith(".deb"), r.stdout
    return path


def test_deb_builds_installs_runs_and_is_removed(deb, tmp_path):
    info = run(["dpkg-deb", "-I", deb]).stdout
    assert re.search(r"^ Package: herald$", info, re.M), info
    # No placeholder: the project's name with a never-deliverable address
    # (RFC 2606 .invalid), as docs/deploy.md says.
    assert re.search(r"^ Maintainer: herald project <packaging@herald\.invalid>$", info, re.M), info
    depends = re.search(r"^ Depends: (.*)$", info, re.M).group(1)
    for pkg in ("libuv1", "libsqlite3-0", "libjansson4", "libssl3"):
        assert pkg in depends, depends
    conffiles = run(["sh", "-c", f"dpkg-deb -I {deb} conffiles"]).stdout
    assert conffiles.strip() == "/etc/herald/herald.conf"

    root = tmp_path / "root"
    r = run(["dpkg-deb", "-x", deb, str(root)])
    assert r.returncode == 0, r.stderr
    herald = root / "usr" / "bin" / "herald"
    unit = root / "lib" / "systemd" / "system" / "herald.service"
    conf = root / "etc" / "herald" / "herald.conf"
    for p in (herald, unit, conf, root / "usr" / "share" / "doc" / "herald" / "deploy.md",
              root / "usr" / "share" / "doc" / "herald" / "deploy" / "nginx.conf"):
        assert p.exists(), p
    text = unit.read_text()
    for line in SANDBOX:
        assert line in text, line
    assert "ExecStart=/usr/bin/herald serve --config /etc/herald/herald.conf" in text
    assert "ExecStartPre=/usr/bin/herald check-config /etc/herald/herald.conf" in text
    if shutil.which("systemd-analyze"):
        # Checked with the paths of the scratch root (the unit's own point
        # at /usr/bin/herald, which is not installed here).
        copy = tmp_path / "herald.service"
        copy.write_text(text.replace("/usr/bin/herald", str(herald)))
        r = run(["systemd-analyze", "verify", str(copy)])
        assert r.returncode == 0, r.stdout + r.stderr

    # The installed binary checks the installed config and serves with it.
    r = run([str(herald), "check-config", str(conf)])
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr
    port = free_port()
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0")
    log = open(tmp_path / "herald.log", "wb")
    proc = subprocess.Popen([str(herald), "serve", "--config", str(conf), "--listen",
                             f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data")],
                            stdout=log, stderr=log, env=env)
    try:
        def healthy():
            assert proc.poll() is None, (tmp_path / "herald.log").read_text()
            return run(["curl", "-fsS", f"http://127.0.0.1:{port}/healthz"]).returncode == 0
        wait_for(healthy, 15, interval=0.05, what="the installed herald")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        stop_process(proc)
        log.close()
    # Removed: nothing of it is left in the scratch root.
    shutil.rmtree(root)
    assert not root.exists()


def test_deb_maintainer_is_settable_and_checked(tmp_path):
    script = os.path.join(ROOT, "scripts", "make-deb.sh")
    env = dict(os.environ, DEB_MAINTAINER="Example Ops <ops@example.com>")
    r = run([script, BIN, str(tmp_path / "out")], env=env)
    assert r.returncode == 0, r.stderr
    info = run(["dpkg-deb", "-f", r.stdout.strip().splitlines()[-1], "Maintainer"]).stdout
    assert info.strip() == "Example Ops <ops@example.com>", info
    for bad in ("ops@example.com", "<ops@example.com>", "Ops <no address>", "Ops <a@b>\nX: y"):
        r = run([script, BIN, str(tmp_path / "bad")], env=dict(os.environ, DEB_MAINTAINER=bad))
        assert r.returncode == 2, (bad, r.stdout, r.stderr)
        assert "DEB_MAINTAINER" in r.stderr, (bad, r.stderr)
    assert not (tmp_path / "bad").exists()


def test_make_install_and_uninstall_with_destdir(tmp_path):
    dest = tmp_path / "dest"
    r = run(["make", "-s", "-C", ROOT, "install", f"DESTDIR={dest}", "PREFIX=/opt/herald",
             f"BIN={BIN}"])
    assert r.returncode == 0, r.stdout + r.stderr
    unit = dest / "opt" / "herald" / "lib" / "systemd" / "system" / "herald.service"
    assert (dest / "opt" / "herald" / "bin" / "herald").exists()
    assert (dest / "etc" / "herald" / "herald.conf").exists()
    assert "ExecStart=/opt/herald/bin/herald serve --config /etc/herald/herald.conf" in unit.read_text()
    # An edited config survives a second install.
    (dest / "etc" / "herald" / "herald.conf").write_text("listen = 127.0.0.1:9999\n")
    assert run(["make", "-s", "-C", ROOT, "install", f"DESTDIR={dest}", "PREFIX=/opt/herald",
                f"BIN={BIN}"]).returncode == 0
    assert "9999" in (dest / "etc" / "herald" / "herald.conf").read_text()
    r = run(["make", "-s", "-C", ROOT, "uninstall", f"DESTDIR={dest}", "PREFIX=/opt/herald"])
    assert r.returncode == 0, r.stderr
    assert not (dest / "opt" / "herald" / "bin" / "herald").exists()
    assert not unit.exists()


def test_check_config(tmp_path):
    ok = tmp_path / "ok.conf"
    ok.write_text("listen = 127.0.0.1:9000\nmax-connections = 100\ntrusted-proxies = 10.0.0.0/8, ::1\n"
                  "[namespace rides]\nretention-max-age = 1h\n")
    r = run([BIN, "check-config", str(ok)])
    assert r.returncode == 0 and r.stdout.strip() == f"{ok}: ok", r.stderr
    cases = {
        "max-connectionz = 5\n": "unknown option 'max-connectionz'",
        "max-connections = 0\n": "max-connections",
        "listen = localhost\n": "listen must be HOST:PORT",
        "trusted-proxies = 10.0.0.0/33\n": "--trusted-proxies",
        "tls-listen = 127.0.0.1:8443\n": "tls-listen needs tls-cert and tls-key",
        "jwt-public-key = /nonexistent.pem\n": "nonexistent",
        "[key ops]\nhash = sha256:zz\nscopes = admin\n": "ops",
        "push-apns-key-file = /nonexistent.p8\npush-apns-key-id = K\npush-apns-team-id = T\n"
        "push-apns-topic = com.example\n": "/nonexistent.p8",
        f"push-vapid-private-key-file = {ok}\npush-vapid-subject = mailto:ops@example.com\n": "VAPID key",
    }
    for body, reason in cases.items():
        bad = tmp_path / "bad.conf"
        bad.write_text(body)
        r = run([BIN, "check-config", str(bad)])
        assert r.returncode == 1, (body, r.stdout, r.stderr)
        assert reason in r.stderr, (body, r.stderr)
    vapid = json.loads(run([BIN, "push", "vapid-keys", "--json"]).stdout)["privateKey"]
    (tmp_path / "vapid.key").write_text(vapid + "\n")
    ok.write_text(f"push-vapid-private-key-file = {tmp_path / 'vapid.key'}\n"
                  "push-vapid-subject = mailto:ops@example.com\n")
    r = run([BIN, "check-config", str(ok)])
    assert r.returncode == 0 and r.stdout.strip() == f"{ok}: ok", r.stderr
    r = run([BIN, "check-config", str(tmp_path / "missing.conf")])
    assert r.returncode == 1 and "cannot open" in r.stderr
    assert run([BIN, "check-config"]).returncode == 2
