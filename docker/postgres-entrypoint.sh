#!/bin/sh
# The PostgreSQL image's entrypoint: on the first start (an empty data volume) it makes the
# cluster, the centrals' role and the lottery's database; on every start it sets that role's
# password from its file and writes who may connect from where, then runs the server in the
# foreground listening on every interface.
#
#   POSTGRES_DB            the database (default lottery)
#   POSTGRES_USER          the role the centrals connect as, its owner (default lottery)
#   POSTGRES_NETWORK       the network (CIDR) whose hosts may connect as that role to that
#                          database, with its password (scram-sha-256): the centrals' network,
#                          which no agency is on. Required.
#   POSTGRES_PASSWORD_FILE the file whose first line is that role's password (a Docker
#                          secret). Required. Set again at every start, so a new secret and a
#                          redeploy rotate it.
#
# Everything else is refused: other roles, other databases, other addresses, and no address
# is trusted without a password. The superuser `postgres` connects only over the Unix socket
# from inside the container (`docker exec`). The password is never printed.
set -eu
db=${POSTGRES_DB:-lottery}
user=${POSTGRES_USER:-lottery}
network=${POSTGRES_NETWORK:-}
password_file=${POSTGRES_PASSWORD_FILE:-}
data=${PGDATA:?PGDATA must name the data directory}

say() { echo "postgres-entrypoint: $*"; }
case $network in
  */*) ;;
  *) say "POSTGRES_NETWORK must be the centrals' network in CIDR form (e.g. 10.213.0.0/24), not '$network'" >&2; exit 1 ;;
esac
case $db$user in
  *[!a-z0-9_]*) say "POSTGRES_DB and POSTGRES_USER take lower-case letters, digits and _ only" >&2; exit 1 ;;
esac
[ -n "$password_file" ] && [ -r "$password_file" ] ||
  { say "POSTGRES_PASSWORD_FILE must name a readable file, not '$password_file'" >&2; exit 1; }
# The first line; SQL's quote doubled, so any character but a newline is taken as it is.
password=$(head -n 1 "$password_file" | tr -d '\r' | sed "s/'/''/g")
[ -n "$password" ] || { say "$password_file holds no password" >&2; exit 1; }

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

# The role's password, as a SCRAM verifier, before anyone can connect: single-user mode has
# no listener. Nothing of the statement may reach the log, not even in an error.
printf "ALTER ROLE %s PASSWORD '%s';\n" "$user" "$password" |
  postgres --single -D "$data" -c password_encryption=scram-sha-256 -c log_min_error_statement=panic \
    -c log_statement=none postgres >/dev/null ||
  { say "could not set the password of role $user" >&2; exit 1; }
unset password

# Rewritten on every start, so that it always says what the current settings say.
cat >"$data/pg_hba.conf" <<HBA
# Written by postgres-entrypoint at each start; edits here are lost.
local all     postgres              peer
host  $db $user $network scram-sha-256
host  all     all      0.0.0.0/0    reject
host  all     all      ::/0         reject
HBA
say "serving $db to $user from $network (scram-sha-256)"
exec postgres -D "$data" -c listen_addresses='*' -c jit=off -c max_connections=200 \
  -c password_encryption=scram-sha-256
