#!/usr/bin/env bash
# Builds the Prometheus image of the swarm stack (`make prometheus-image`), `tp0-prometheus:2`:
# Debian's `prometheus` package on the Debian base that scripts/postgres-image.sh makes once
# with debootstrap (built here if missing), plus docker/prometheus.yml. Nothing is pulled from
# a container registry; the package comes from Debian's mirror the first time, then Docker's
# build cache makes it seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
docker=${DOCKER:-docker}
image=${PROMETHEUS_IMAGE:-tp0-prometheus:2}
base=${POSTGRES_BASE_IMAGE:-tp0-postgres-base:bookworm}
work=target/prometheus
started=$(date +%s)

# The base is the database image's: its script builds it (and that image) when it is missing.
$docker image inspect "$base" >/dev/null 2>&1 || scripts/postgres-image.sh
mkdir -p "$work/context"
cp docker/prometheus.yml "$work/context/"
$docker build -q --build-arg "BASE=$base" -f docker/prometheus.Dockerfile -t "$image" "$work/context" >"$work/build.log" 2>&1 ||
  { tail -20 "$work/build.log" >&2; exit 1; }
echo "prometheus-image: $image ready in $(($(date +%s) - started)) s ($(($($docker image inspect -f '{{.Size}}' "$image") / 1000000)) MB)"
