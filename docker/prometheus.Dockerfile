# Prometheus for the swarm stack, from Debian's `prometheus` package: BASE is the Debian root
# file system that scripts/postgres-image.sh makes with debootstrap and imports (nothing is
# pulled from a registry); the package comes from Debian's mirror, as the base's did.
ARG BASE=tp0-postgres-base:bookworm
FROM ${BASE}
# No recommends (the node exporter); policy-rc.d keeps the package's scripts from starting a
# service inside the build; the lists and the docs go, as in the base.
RUN printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
    && apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /usr/share/doc/* /usr/share/man/* /usr/sbin/policy-rc.d \
    && mkdir -p /prometheus && chown prometheus:prometheus /prometheus
COPY prometheus.yml /etc/prometheus/prometheus.yml
USER prometheus
EXPOSE 9090
# Read-only to whoever reaches it: neither the admin API (deleting series) nor the lifecycle
# API (reload, quit) is enabled. The data lives in the container: a new stack, a new history.
ENTRYPOINT ["/usr/bin/prometheus", "--config.file=/etc/prometheus/prometheus.yml", \
    "--storage.tsdb.path=/prometheus", "--storage.tsdb.retention.time=7d", \
    "--web.listen-address=:9090"]
HEALTHCHECK --interval=2s --timeout=3s --retries=15 \
    CMD ["/usr/bin/promtool", "query", "instant", "http://localhost:9090", "1"]
