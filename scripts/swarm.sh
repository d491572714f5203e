#!/usr/bin/env bash
# The lottery on Docker Swarm (`make swarm-up`, `make swarm-logs`, `make swarm-down`).
#
#   scripts/swarm.sh up     a new lottery: the swarm (made on this host if none is active,
#                           remembered under target/swarm/), datasets if missing (existing
#                           ones are kept), credentials if there is no set for exactly
#                           $AGENCIES agencies, the stack file for $AGENCIES agencies and
#                           $CENTRALS centrals, then `docker stack deploy`; returns once the
#                           database and every central are healthy, and says where
#                           Prometheus's page is
#   scripts/swarm.sh logs   follows every service's log
#   scripts/swarm.sh down   removes the stack and waits until its containers and networks are
#                           gone; leaves the swarm if `up` made it and no other stack remains
#
# The images must exist (the make targets build them). A new `up` removes the previous run's
# database volume and winners files first, as `make docker-compose-up` clears the winners;
# `down` keeps them for a look after the draw.
#
# Environment: STACK (tp0swarm), STACK_FILE (docker-stack.yaml: `config/` and `.data/` beside
# it), AGENCIES (5), CENTRALS (3), IMAGE_TAG (latest), DATAGEN (the datagen command),
# CREDENTIALS (the credentials command), SWARM_ADVERTISE_ADDR (127.0.0.1), STACK_SUBNET and
# STACK_DATABASE_SUBNET (see scripts/generate-stack.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
docker=${DOCKER:-docker}
stack=${STACK:-tp0swarm}
stack_file=${STACK_FILE:-docker-stack.yaml}
stack_dir=$(dirname "$stack_file")
agencies=${AGENCIES:-5}
centrals=${CENTRALS:-3}
datagen=${DATAGEN:-target/release/datagen}
credentials=${CREDENTIALS:-target/release/credentials}
# Present while this host's swarm is one that `up` made: `down` leaves only that one.
made_swarm=target/swarm/made-swarm
export IMAGE_TAG=${IMAGE_TAG:-latest}
export HOST_UID=${HOST_UID:-$(id -u)} HOST_GID=${HOST_GID:-$(id -g)}

say() { echo "swarm-$command: $*"; }
fail() {
  say "FAIL: $*" >&2
  exit 1
}

# Waits (up to $1 s) until `$2...` succeeds.
wait_for() {
  local deadline=$(($(date +%s) + $1))
  shift
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

swarm_active() { [ "$($docker info -f '{{.Swarm.LocalNodeState}}' 2>/dev/null)" = active ]; }
# The stack's containers, running or not.
stack_containers() { $docker ps -aq --filter "label=com.docker.stack.namespace=$stack"; }
# Containers of service $1 whose health check passes.
healthy() { $docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_$1" --filter health=healthy | wc -l; }
up_and_healthy() { [ "$(healthy postgres)" -ge 1 ] && [ "$(healthy server)" -ge "$centrals" ]; }

# Where Prometheus's page is, from this host: it is not published, so the address of its
# container on docker_gwbridge (the bridge every swarm container has to the host), port 9090.
prometheus_page() {
  local id address
  id=$($docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_prometheus" --filter health=healthy | head -1)
  [ -n "$id" ] || return 1
  address=$($docker network inspect docker_gwbridge -f "{{range \$id, \$c := .Containers}}{{if eq (slice \$id 0 12) \"$id\"}}{{\$c.IPv4Address}}{{end}}{{end}}" 2>/dev/null)
  address=${address%/*}
  [ -n "$address" ] || return 1
  echo "http://$address:9090/"
}

# The stack's networks: the agencies' and the database's.
networks=(testing_net database_net)
# The networks, once no container of the stack is left: `docker stack rm` removes the services
# and then the networks at once, and a task still stopping keeps a network "in use"; that
# network is left behind (and `stack rm` exits 1), so it is removed here when free.
network_gone() {
  [ -z "$(stack_containers)" ] || return 1
  local network
  for network in "${networks[@]}"; do
    $docker network inspect "${stack}_$network" >/dev/null 2>&1 || continue
    $docker network rm "${stack}_$network" >/dev/null 2>&1
    ! $docker network inspect "${stack}_$network" >/dev/null 2>&1 || return 1
  done
}

remove_stack() {
  if $docker stack ls --format '{{.Name}}' 2>/dev/null | grep -x "$stack" >/dev/null; then
    local out
    out=$($docker stack rm "$stack" 2>&1) || say "docker stack rm left something for later: $out"
  fi
  # `docker stack rm` returns before the containers and the network are gone.
  wait_for 90 network_gone || fail "the containers or the networks of stack $stack are still there after 90 s"
}

up() {
  if ! [[ $agencies =~ ^[0-9]+$ && $centrals =~ ^[1-9][0-9]*$ ]]; then
    fail "AGENCIES must be 0 or more, CENTRALS 1 or more"
  fi
  if ! swarm_active; then
    $docker swarm init --advertise-addr "${SWARM_ADVERTISE_ADDR:-127.0.0.1}" >/dev/null
    mkdir -p "$(dirname "$made_swarm")"
    touch "$made_swarm"
    say "made a single-node swarm on ${SWARM_ADVERTISE_ADDR:-127.0.0.1} (make swarm-down leaves it)"
  fi
  remove_stack
  $docker volume rm "${stack}_pgdata" >/dev/null 2>&1 || true

  local data=$stack_dir/.data missing=()
  for i in $(seq 1 "$agencies"); do
    [ -f "$data/dataset-$i.csv" ] || missing+=("$i")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    # datagen writes every agency's file, each depending on its agency only: make them
    # aside and take the missing ones.
    local fresh=target/swarm/datagen
    rm -rf "$fresh"
    $datagen --dir "$fresh" --agencies "$agencies" >/dev/null
    mkdir -p "$data"
    for i in "${missing[@]}"; do mv "$fresh/dataset-$i.csv" "$data/"; done
    rm -rf "$fresh"
    say "generated ${#missing[@]} missing dataset(s) in $data"
  fi
  # The agencies' keys, the centrals' certificate (valid for the service name `server`) and
  # their database password: kept while they are a set for exactly these agencies, so that a
  # key handed to an agency stays valid from one run to the next; else a fresh set (the old
  # one is replaced whole).
  local creds=$data/credentials
  if ! [ -f "$creds/central/agencies.pub" ] || ! [ -f "$creds/central/tls.crt" ] || ! [ -f "$creds/ca.crt" ] ||
    ! [ -s "$creds/database.password" ] ||
    [ "$(grep -c '^[0-9]' "$creds/central/agencies.pub")" != "$agencies" ]; then
    $credentials "$creds" "$agencies" server localhost 127.0.0.1 >/dev/null
    say "made credentials for $agencies agencies in $creds"
  fi
  mkdir -p "$data/winners"
  rm -f "$data/winners/"winners-*.csv "$data/winners/"winners-*.csv.journal

  scripts/generate-stack.sh "$stack_file" "$agencies" "$centrals" >/dev/null
  local started
  started=$(date +%s%N)
  # First without agencies: a swarm has no `depends_on`, and agencies started at once would
  # all find the first central to pass its health check (the only name DNS gives then) and
  # stay on it. Once every central is healthy the second deploy starts the agencies, and
  # the service name spreads them over all the centrals.
  local out
  out=$(AGENCY_REPLICAS=0 $docker stack deploy --resolve-image never -c "$stack_file" "$stack" 2>&1) ||
    fail "docker stack deploy: $out"
  wait_for 180 up_and_healthy ||
    fail "after 180 s: $(healthy postgres) of 1 database and $(healthy server) of $centrals centrals healthy (make swarm-logs)"
  local healthy_ms=$((($(date +%s%N) - started) / 1000000))
  out=$(AGENCY_REPLICAS=1 $docker stack deploy --resolve-image never -c "$stack_file" "$stack" 2>&1) ||
    fail "docker stack deploy: $out"
  say "stack $stack deployed from $stack_file: the database and $centrals central(s) healthy in $healthy_ms ms, then $agencies agencies started"
  local page
  if page=$(wait_for_output 60 prometheus_page); then
    local at=${page#http://}
    say "prometheus: $page (not published: from this host only; from another machine: ssh -L 9090:${at%/} THIS_HOST, then http://localhost:9090/). Read-only; try sum(lottery_bets_stored_total)"
  else
    say "prometheus: not healthy after 60 s (make swarm-logs); the lottery runs without it"
  fi
}

# Prints what `$2...` prints once it succeeds, trying for up to $1 s.
wait_for_output() {
  local deadline=$(($(date +%s) + $1)) out
  shift
  until out=$("$@"); do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.5
  done
  echo "$out"
}

logs() {
  local pids=()
  for service in $($docker stack services --format '{{.Name}}' "$stack"); do
    $docker service logs -f --no-trunc "$service" &
    pids+=($!)
  done
  [ ${#pids[@]} -gt 0 ] || fail "stack $stack is not deployed"
  trap 'kill "${pids[@]}" 2>/dev/null || true' INT TERM EXIT
  wait
}

down() {
  swarm_active || { say "no swarm is active: nothing to remove"; rm -f "$made_swarm"; return; }
  remove_stack
  say "stack $stack removed (its database volume ${stack}_pgdata is kept until the next swarm-up)"
  if [ -f "$made_swarm" ]; then
    if [ -n "$($docker stack ls --format '{{.Name}}')" ]; then
      say "other stacks still run: this host stays in the swarm"
    else
      $docker swarm leave --force >/dev/null
      rm -f "$made_swarm"
      say "left the swarm that swarm-up made"
    fi
  fi
}

command=${1:-}
case $command in
  up) up ;;
  logs) logs ;;
  down) down ;;
  *)
    echo "usage: $0 up|logs|down" >&2
    exit 2
    ;;
esac
