#!/bin/sh
# Installs what herald needs to build and test on Debian 12, as root.
# Only missing packages are installed, so a second run is quick.
set -eu
PKGS="cmake make gcc clang pkg-config libuv1-dev libhttp-parser-dev libjansson-dev
libsqlite3-dev libcurl4-openssl-dev libcmocka-dev python3-pytest python3-requests
libclang-rt-14-dev libwslay-dev libjwt-dev libssl-dev openssl python3-websockets python3-cryptography nodejs chromium curl valgrind nginx
redis-server redis-sentinel redis-tools libhiredis-dev"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "install-deps: installing$missing"
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
# npm comes with some Node.js builds and is its own Debian package in others.
if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq npm >/dev/null
fi
# The Node clients the interop tests drive (tests/js/package-lock.json pins them).
# npm ci again whenever the lock file is newer than the last install.
if [ -f tests/js/package-lock.json ] && { [ ! -f tests/js/node_modules/.package-lock.json ] ||
	[ tests/js/package-lock.json -nt tests/js/node_modules/.package-lock.json ]; }; then
  echo "install-deps: npm ci in tests/js"
  (cd tests/js && npm ci --no-audit --no-fund --ignore-scripts >/dev/null)
fi
