#!/bin/sh
# make-deb — builds herald's Debian package from this repository with
# dpkg-deb, offline: the binary of a build directory, the systemd unit, the
# default config (a conffile) and the docs.
#
# Usage: scripts/make-deb.sh [BIN [OUTDIR]]   (default build/herald, build)
# DEB_MAINTAINER="Name <address>" sets the control file's Maintainer (Debian
# Policy 5.6.2: a name and an RFC 5322 address). The default names the
# project with an address under .invalid (RFC 2606: never deliverable), so a
# package built from this repository never claims a person or a mailbox; a
# distributor sets their own (docs/deploy.md). Prints the path of the .deb. Depends: the package of every shared
# library the binary links directly (readelf NEEDED → ldd → dpkg -S).
set -eu
cd "$(dirname "$0")/.."
BIN=${1:-build/herald}
OUT=${2:-build}
[ -x "$BIN" ] || { echo "make-deb: $BIN is missing (make build)" >&2; exit 1; }
MAINTAINER=${DEB_MAINTAINER:-herald project <packaging@herald.invalid>}
case "$MAINTAINER" in
  *"
"*) echo "make-deb: DEB_MAINTAINER must be one line" >&2; exit 2 ;;
esac
printf '%s\n' "$MAINTAINER" | grep -Eq '^[^<>]*[^<> ][^<>]* <[^<>@ ]+@[^<>@ ]+>$' || {
  echo "make-deb: DEB_MAINTAINER must be \"Name <user@host>\", got: $MAINTAINER" >&2; exit 2; }
VERSION=$("$BIN" version | awk '{print $2}')
ARCH=$(dpkg --print-architecture)
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT INT TERM

make -s install DESTDIR="$STAGE" PREFIX=/usr SYSCONFDIR=/etc UNITDIR=/lib/systemd/system BIN="$BIN" >&2

# Depends: the packages that ship the libraries the binary needs.
needed=$(readelf -d "$BIN" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
deps=""
for lib in $needed; do
  path=$(ldd "$BIN" | awk -v l="$lib" '$1 == l {print $3}')
  [ -n "$path" ] || continue
  pkg=$(dpkg -S "$(realpath "$path")" 2>/dev/null | head -1 | cut -d: -f1) ||
    pkg=$(dpkg -S "$path" 2>/dev/null | head -1 | cut -d: -f1) || true
  [ -n "$pkg" ] || continue
  case " $deps " in *" $pkg "*) ;; *) deps="$deps $pkg" ;; esac
done
depends=$(echo $deps | sed 's/ /, /g')

mkdir -p "$STAGE/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
cat > "$STAGE/DEBIAN/control" <<CONTROL
Package: herald
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $size
Depends: $depends
Section: net
Priority: optional
Description: durable real-time event hub
 herald stores the events backends publish, in order and durably, as
 CloudEvents, and delivers them over WebSocket (Centrifugo protocol),
 Server-Sent Events, long-poll, pull consumer groups, webhooks and
 device push, with gap-free resume from any offset.
CONTROL
echo /etc/herald/herald.conf > "$STAGE/DEBIAN/conffiles"
cat > "$STAGE/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null || true
  systemctl enable herald.service >/dev/null || true
  systemctl restart herald.service >/dev/null || true
fi
POSTINST
cat > "$STAGE/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl stop herald.service >/dev/null || true
fi
PRERM
cat > "$STAGE/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null || true
fi
if [ "$1" = purge ]; then
  rm -rf /var/lib/private/herald /var/lib/herald
fi
POSTRM
chmod 0755 "$STAGE/DEBIAN/postinst" "$STAGE/DEBIAN/prerm" "$STAGE/DEBIAN/postrm"
mkdir -p "$OUT"
deb="$OUT/herald_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group --build "$STAGE" "$deb" >&2
echo "$deb"
