#!/usr/bin/env bash
# What the tests need on this machine, by Debian package name, and the one place that says so:
# `make test` and CI's .ci/run both start here, so CI cannot pass where the README's command
# would stop.
#
#   scripts/setup.sh            install what is missing (as root, where apt-get exists), or
#                               print the one command that does and exit 1
#   scripts/setup.sh --check    only say what is missing (exit 1 if anything is)
#
# Rust's rustfmt and clippy components are checked the same way (installed with rustup).
set -euo pipefail

check_only=false
case "${1:-}" in
  "") ;;
  --check) check_only=true ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

missing=()
need() { # need PACKAGE TEST...: PACKAGE is missing unless the test succeeds
  local package=$1; shift
  "$@" >/dev/null 2>&1 || missing+=("$package")
}
has() { command -v "$1"; }
initdb_found() { has initdb || compgen -G '/usr/lib/postgresql/*/bin/initdb'; }
compose_found() { docker compose version || has docker-compose; }

# make runs the suite; the tests signal processes with kill(1), cap file sizes with prlimit(1).
need make has make
need procps has kill
need util-linux has prlimit
# `make bench` measures each process's peak RSS with GNU time.
need time test -x /usr/bin/time
# The database tests start throwaway PostgreSQL servers of their own (initdb, pg_ctl).
need postgresql initdb_found
# The swarm check builds its PostgreSQL image from Debian's packages.
need debootstrap has debootstrap
# The Docker end-to-end checks: an engine and Compose (v2's plugin or v1's docker-compose).
need docker.io has docker
need docker-compose compose_found
# Exercise 3 by hand (`nc` on the host); the HTTP listener's tests (promtool checks the
# metrics page, Chromium renders the status page).
need netcat-openbsd has nc
need chromium has chromium
need prometheus has promtool

rust_missing=false
{ cargo fmt --version && cargo clippy --version; } >/dev/null 2>&1 || rust_missing=true

# The busybox image of the netcat check is built from Debian's busybox-static package when it
# cannot be pulled: that needs apt's package lists, not the package installed.
lists_missing=false
if has apt-cache >/dev/null && ! apt-cache show busybox-static >/dev/null 2>&1; then
  lists_missing=true
fi

if [ ${#missing[@]} -eq 0 ] && ! $rust_missing && ! $lists_missing; then
  exit 0
fi

if ! $check_only && [ "$(id -u)" = 0 ] && has apt-get >/dev/null; then
  echo "setup: installing: ${missing[*]:-(nothing)}; apt's package lists refreshed"
  apt-get update -qq
  [ ${#missing[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if $rust_missing; then rustup component add rustfmt clippy; fi
  exit 0
fi

# One line, first, naming what is missing and the command to run; nothing was tested yet.
what=("${missing[@]}")
$rust_missing && what+=("rustfmt/clippy")
$lists_missing && what+=("apt's package lists")
run="sudo apt-get update"
[ ${#missing[@]} -eq 0 ] || run+=" && sudo apt-get install -y ${missing[*]}"
$rust_missing && run+=" && rustup component add rustfmt clippy"
[ ${#missing[@]} -ne 0 ] || $lists_missing || run="rustup component add rustfmt clippy"
echo "setup: FAIL: missing ${what[*]}; run: $run" >&2
exit 1
