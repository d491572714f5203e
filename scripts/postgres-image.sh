#!/usr/bin/env bash
# Builds the PostgreSQL 15 image of the swarm stack (`make postgres-image`) from Debian's
# own packages, with nothing pulled from a container registry.
#
#   1. A base image, `tp0-postgres-base:bookworm`: a minimal Debian root file system
#      (`debootstrap --variant=minbase`) with `postgresql-15` and the latest security and
#      point-release updates installed, trimmed of what a database server never reads (apt's
#      caches, manuals, translations, the LLVM JIT), imported with `docker import`. Built
#      once; kept while its revision label matches BASE_REVISION below (bump it when this
#      part changes).
#   2. The image itself, `tp0-postgres:15`: the base plus docker/postgres-entrypoint.sh and a
#      health check (docker/postgres.Dockerfile); Docker's build cache makes it seconds.
#
# Needs root (debootstrap and chroot), apt's debootstrap package and Debian's mirror, the
# first time only.
set -euo pipefail
cd "$(dirname "$0")/.."
docker=${DOCKER:-docker}
image=${POSTGRES_IMAGE:-tp0-postgres:15}
base=${POSTGRES_BASE_IMAGE:-tp0-postgres-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# The base's recipe: bump when anything between here and `docker import` changes.
BASE_REVISION=1
work=target/postgres
rootfs=$work/rootfs
started=$(date +%s)

base_revision() { $docker image inspect -f '{{index .Config.Labels "tp0.base-revision"}}' "$base" 2>/dev/null || true; }

# Why the base cannot be built here, in one line, or nothing when it can (or need not be).
cannot_build() {
  [ "$(base_revision)" != "$BASE_REVISION" ] || return 0
  command -v debootstrap >/dev/null ||
    { echo "postgres-image: debootstrap is missing; run: sudo apt-get install -y debootstrap"; return; }
  [ "$(id -u)" = 0 ] || echo "postgres-image: building $base the first time needs root (debootstrap, chroot); run: sudo make postgres-image"
}

build_base() {
  echo "postgres-image: building $base from Debian bookworm (debootstrap, about a minute)"
  rm -rf "$rootfs"
  mkdir -p "$work"
  # A failed run must not leave a half-made root file system behind for the next one.
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase --include=postgresql-15 bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  # The security and point-release updates: the release's own postgresql-15 may be months old.
  cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security_mirror bookworm-security main
SOURCES
  # Packages' scripts must not try to start services inside the chroot.
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod +x "$rootfs/usr/sbin/policy-rc.d"
  { chroot "$rootfs" apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive chroot "$rootfs" apt-get -y -qq upgrade; } >"$work/upgrade.log" 2>&1 ||
    { tail -20 "$work/upgrade.log" >&2; exit 1; }
  # The cluster the package made: the entrypoint makes its own on the data volume.
  rm -rf "$rootfs"/var/lib/postgresql/15 "$rootfs"/etc/postgresql/15
  # JIT compilation (off in the image's settings) is the bulk of the size: LLVM and Z3.
  rm -f "$rootfs"/usr/lib/postgresql/15/lib/llvmjit* "$rootfs"/usr/lib/x86_64-linux-gnu/libLLVM-* \
    "$rootfs"/usr/lib/x86_64-linux-gnu/libz3.so*
  rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
    "$rootfs"/usr/share/i18n/* "$rootfs"/var/log/*.log "$rootfs"/usr/sbin/policy-rc.d
  tar -C "$rootfs" -c . | $docker import -c "LABEL tp0.base-revision=$BASE_REVISION" - "$base" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
}

# --check: only say (exit 1) why the image could not be built, so that a check that needs it
# fails before minutes of other work.
reason=$(cannot_build)
if [ "${1:-}" = --check ]; then
  [ -z "$reason" ] || { echo "$reason" >&2; exit 1; }
  exit 0
fi
[ -z "$reason" ] || { echo "$reason" >&2; exit 1; }
if [ "$(base_revision)" != "$BASE_REVISION" ]; then
  build_base
fi
mkdir -p "$work/context"
cp docker/postgres-entrypoint.sh "$work/context/"
$docker build -q --build-arg "BASE=$base" -f docker/postgres.Dockerfile -t "$image" "$work/context" >/dev/null
echo "postgres-image: $image ready in $(($(date +%s) - started)) s ($(($($docker image inspect -f '{{.Size}}' "$image") / 1000000)) MB)"
