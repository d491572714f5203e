# PostgreSQL 15 for the swarm stack, from Debian's packages: BASE is the root file system
# that scripts/postgres-image.sh makes with debootstrap and imports (nothing is pulled).
# The entrypoint makes the cluster on the data volume on first start, then runs the server.
ARG BASE=tp0-postgres-base:bookworm
FROM ${BASE}
ENV PATH=/usr/lib/postgresql/15/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PGDATA=/var/lib/postgresql/data/pgdata
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
# The volume's mount point, owned by postgres, so that a new named volume starts with that
# owner (Docker copies it) and the server never needs root.
RUN mkdir -p /var/lib/postgresql/data && chown postgres:postgres /var/lib/postgresql/data \
    && chmod 700 /var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
USER postgres
EXPOSE 5432
# SIGTERM is PostgreSQL's "smart" shutdown, which waits for every client to disconnect (the
# centrals' pools never do); SIGINT is the "fast" one: roll back, checkpoint, exit.
STOPSIGNAL SIGINT
# On the usual Unix socket, as postgres (peer: a probe that logs nothing): the entrypoint's
# first-start setup uses a private socket, so this passes only once the database exists and
# the real server is up.
HEALTHCHECK --interval=2s --timeout=3s --retries=15 \
    CMD pg_isready -q -h /var/run/postgresql -U postgres -d "${POSTGRES_DB:-lottery}"
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]
