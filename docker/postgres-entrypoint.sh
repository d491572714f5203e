#!/bin/sh
# The PostgreSQL image's entrypoint: on the first start (an empty data volume) it makes the
# cluster, the centrals' role and the lottery's database; on every start it writes who may
# connect from where, then runs the server in the foreground listening on every interface.
#
#   POSTGRES_DB            the database (default lottery)
#   POSTGRES_USER          the role the centrals connect as, its owner (default lottery)
#   POSTGRES_TRUST_NETWORK the network (CIDR) whose hosts may connect as that role to that
#                          database without a password: the stack's overlay subnet. Required.
#
# Everything else is refused: other roles, other databases, other addresses. The superuser
# `postgres` connects only over the Unix socket from inside the container (`docker exec`).
set -eu
db=${POSTGRES_DB:-lottery}
user=${POSTGRES_USER:-lottery}
network=${POSTGRES_TRUST_NETWORK:-}
data=${PGDATA:?PGDATA must name the data directory}

say() { echo "postgres-entrypoint: $*"; }
case $network in
  */*) ;;
  *) say "POSTGRES_TRUST_NETWORK must be the clients' network in CIDR form (e.g. 10.213.0.0/24), not '$network'" >&2; exit 1 ;;
esac
case $db$user in
  *[!a-z0-9_]*) say "POSTGRES_DB and POSTGRES_USER take lower-case letters, digits and _ only" >&2; exit 1 ;;
esac

if [ ! -s "$data/PG_VERSION" ]; then
  # Made beside its final place and renamed at the end: a start interrupted half-way leaves
  # no cluster that looks finished, and the next start begins again.
  staging=$data.init
  rm -rf "$staging"
  say "first start: making the cluster in $data"
  initdb -D "$staging" -U postgres -E UTF8 --locale=C.UTF-8 --auth-local=peer --auth-host=reject >/dev/null
  # No TCP and a private socket: neither the health check nor a client sees this server.
  socket=$(mktemp -d)
  pg_ctl -D "$staging" -o "-c listen_addresses='' -c unix_socket_directories=$socket" -w -s start
  psql -v ON_ERROR_STOP=1 -q -h "$socket" -U postgres -d postgres -c "CREATE ROLE $user LOGIN" -c "CREATE DATABASE $db OWNER $user"
  pg_ctl -D "$staging" -m fast -w -s stop
  rmdir "$socket"
  mv "$staging" "$data"
fi

# Rewritten on every start, so that it always says what the current settings say.
cat >"$data/pg_hba.conf" <<HBA
# Written by postgres-entrypoint at each start; edits here are lost.
local all     postgres              peer
host  $db $user $network trust
host  all     all      0.0.0.0/0    reject
host  all     all      ::/0         reject
HBA
say "serving $db to $user from $network"
exec postgres -D "$data" -c listen_addresses='*' -c jit=off -c max_connections=200
