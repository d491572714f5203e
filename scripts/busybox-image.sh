#!/usr/bin/env bash
# Makes sure a `busybox` image is there for the netcat check (exercise 3).
#
# In order: an image already present; a pull (most machines); else one built here from
# Debian's busybox-static package, downloaded and unpacked under target/ (never installed on
# the host), for machines with no container registry. Needs apt-get only in that last case.
set -euo pipefail
cd "$(dirname "$0")/.."
image=${BUSYBOX_IMAGE:-busybox:latest}
docker=${DOCKER:-docker}

if $docker image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi
if timeout 60 $docker pull -q "$image" >/dev/null 2>&1; then
  echo "busybox-image: pulled $image"
  exit 0
fi

echo "busybox-image: cannot pull $image; building it from Debian's busybox-static package"
work=target/busybox
rm -rf "$work"
mkdir -p "$work/unpacked"
if ! apt-cache show busybox-static >/dev/null 2>&1; then
  # A fresh machine may have no package lists yet.
  apt-get update -qq
fi
(cd "$work" && apt-get download -q busybox-static >/dev/null)
dpkg-deb -x "$work"/busybox-static_*.deb "$work/unpacked"
cp "$work/unpacked/bin/busybox" "$work/busybox"
$docker build -q -f docker/busybox.Dockerfile -t "$image" "$work" >/dev/null
echo "busybox-image: built $image ($($docker image inspect -f '{{.Size}}' "$image") bytes)"
