#!/usr/bin/env bash
# Several centrals on Docker Swarm, end to end, through the Makefile's own targets:
#
#   1. scripts/generate-stack.sh: files `docker-compose config` accepts for several N and R,
#      with R dnsrr replicas on the database, N agencies; usage errors exit 2.
#   2. `make swarm-up`: PostgreSQL (built here, nothing pulled) and 3 centrals healthy (their
#      health check speaks TLS), 20 agencies started; every central runs with the agencies'
#      keys and TLS (`mode: keys`, `transport: tls`).
#   3. Mid-upload, one central's container is SIGKILLed (`docker kill`); the swarm replaces
#      it, the agencies it served reconnect through the service name to a central.
#   4. Every agency's summary equals what `expect` computes from the datasets; with the
#      database engine, also every agency's exit 0 and total, and the winners exported from
#      the database.
#   4b. Prometheus (built from Debian's package, no image pulled) found every central through
#      DNS: per agency, what its HTTP API sums of lottery_bets_stored_total over every central
#      that ran equals the truth, except below it for agencies the killed central served
#      (the bets it stored after its last scrape died with it), never above.
#   4c. The database serves the centrals' role over its own network with the password of the
#      Docker secret (scram-sha-256) and refuses a wrong password, no password and its
#      superuser; from the agencies' network (a throwaway busybox container on it) it neither
#      resolves nor answers; no service's log holds the password.
#   5. `make swarm-down`: the stack's containers and networks are gone.
#
# Where no Docker engine answers it says so loudly and exits 0, unless CI=true: then it fails.
# It works in target/swarm-e2e (its own config copies, datasets, winners and stack file),
# deploys stack `tp0swarme2e` on its own subnet with images tagged `swarme2e`, and removes
# the stack, its volume and those images on the way out, even after a failure (the PostgreSQL
# image stays: it is a cache that takes a minute and a half to build again).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
docker=${DOCKER:-docker}

# The assertions that need the one shared store (every agency's total, the winners read back
# from the database). SWARM_E2E_DATABASE=false skips them, to look at the stack alone.
database_checks=${SWARM_E2E_DATABASE:-true}

say() { echo "docker-e2e: $*"; }
banner() { printf '\n%s\n%s\n%s\n\n' "==================================================================" "$*" "=================================================================="; }

if ! $docker info >/dev/null 2>&1; then
  if [ "${CI:-}" = true ]; then
    banner "docker-e2e: FAIL: no Docker engine answers, and with CI=true the swarm check is mandatory"
    exit 1
  fi
  banner "docker-e2e: SKIPPED: no Docker engine answers; the swarm stack was NOT checked"
  exit 0
fi
# What the swarm check needs beyond the engine, said first, in one line, before any build.
if ! why=$(scripts/postgres-image.sh --check 2>&1); then
  banner "docker-e2e: FAIL: $why"
  exit 1
fi

stack=tp0swarme2e
work=target/swarm-e2e
agencies=20
centrals=3
rows=8000
make_vars=("STACK=$stack" "STACK_FILE=$work/docker-stack.yaml" "AGENCIES=$agencies" "CENTRALS=$centrals" IMAGE_TAG=swarme2e)
# Its own subnets: another stack (make swarm-up) may run beside it.
export STACK_SUBNET=10.213.1.0/24 STACK_DATABASE_SUBNET=10.214.1.0/24
# The throwaway container that looks at the networks from an agency's place (make busybox-image).
busybox=${BUSYBOX_IMAGE:-busybox:latest}
checks=0
pass() {
  checks=$((checks + 1))
  say "ok: $*"
}
fail() {
  say "FAIL: $*"
  exit 1
}

if $docker stack ls --format '{{.Name}}' 2>/dev/null | grep -x "$stack" >/dev/null; then
  fail "a stack named $stack is deployed (docker stack rm $stack first)"
fi

# Every container (running or exited, replaced ones too) of service $1.
containers() { $docker ps -aq --filter "label=com.docker.swarm.service.name=${stack}_$1"; }
# (Never `... | grep -q` on a long stream: grep's early exit would SIGPIPE the writer, which
# pipefail turns into a failure.)
# Every log line of service $1, across its containers.
service_logs() {
  local id
  for id in $(containers "$1"); do $docker logs "$id" 2>&1; done
}
healthy() { $docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_$1" --filter health=healthy | wc -l; }
# The value of `key: value` in a log line.
field() { sed -n "s/.*| $2: \([^ |]*\).*/\1/p" <<<"$1"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# `service network` for each network each service of stack file $1 is on.
service_networks() {
  awk '/^  [a-z0-9_]+:$/ { service = $1; sub(":", "", service); nets = 0; next }
       /^    networks:$/ { nets = 1; next }
       nets && /^      - / { print service, $2; next }
       { nets = 0 }
       /^[a-z]/ { service = "" }' "$1"
}
# The first byte a PostgreSQL server answers to an SSL request on host $2 port 5432, from a
# throwaway busybox container started with `docker run` options $1 (`N` from PostgreSQL;
# nothing when nothing answers; anything else is not PostgreSQL). stdin is held open for a
# while: busybox nc stops at its end, before reading the answer.
postgres_answer() {
  # shellcheck disable=SC2086 # $1: docker run options, split on purpose
  $docker run --rm $1 "$busybox" sh -c \
    '(printf "\000\000\000\010\004\322\026\057"; sleep 2) | timeout 3 nc -w 2 "$0" 5432 2>/dev/null | head -c 1' "$2" || true
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

cleanup() {
  status=$?
  # A second Ctrl-C must not cut the cleaning short.
  trap '' INT TERM
  if [ $status -ne 0 ]; then
    say "dumping the services' logs after the failure"
    for service in postgres server prometheus $(seq -f 'client%g' 1 $agencies); do
      service_logs "$service" | sed "s/^/$service | /" | tail -30 || true
    done
  fi
  make --no-print-directory -s swarm-down "${make_vars[@]}" >/dev/null 2>&1 || true
  $docker volume rm "${stack}_pgdata" >/dev/null 2>&1 || true
  $docker rmi -f tp0-server:swarme2e tp0-client:swarme2e >/dev/null 2>&1 || true
  [ $status -eq 0 ] || banner "docker-e2e: FAIL (exit $status); the swarm stack, its volume and images removed"
}
trap cleanup EXIT
# A signal becomes an ordinary exit, so that the cleanup runs whole.
trap 'exit 130' INT
trap 'exit 143' TERM

banner "docker-e2e: several centrals on Docker Swarm"
cargo build --release --locked --quiet -p testkit --bin datagen --bin expect
out=$(BUSYBOX_IMAGE=$busybox make --no-print-directory -s busybox-image 2>&1) || fail "make busybox-image: $out"
rm -rf "$work"
mkdir -p "$work"
cp -r config "$work/config"

# 1. The generator.
compose=$(command -v docker-compose || echo "$docker compose")
for shape in "0 1" "1 1" "5 3" "20 3"; do
  read -r n r <<<"$shape"
  file=$work/gen-$n-$r.yaml
  scripts/generate-stack.sh "$file" "$n" "$r" >/dev/null
  (cd "$work" && $compose -f "$(basename "$file")" config -q) || fail "the stack file for $n agencies and $r centrals is not valid"
  [ "$(grep -c '^  client[0-9]*:$' "$file")" = "$n" ] || fail "$file does not hold $n agencies"
  grep -q "SERVER_AGENCIES=$n\$" "$file" || fail "$file does not expect $n agencies"
  grep -q "replicas: $r\$" "$file" || fail "$file does not run $r centrals"
  grep -q 'SERVER_DATABASE_URL=postgres://lottery@postgres:5432/lottery$' "$file" || fail "$file gives the centrals no database"
  # Each service's networks: the database and the centrals on database_net, no agency on it,
  # and no trust for any network.
  memberships=$(service_networks "$file")
  [ "$(grep -c ' database_net$' <<<"$memberships")" = 2 ] && grep -qx 'postgres database_net' <<<"$memberships" &&
    grep -qx 'server database_net' <<<"$memberships" && grep -qx 'server testing_net' <<<"$memberships" ||
    fail "$file: the database's network is not the database's and the centrals' only: $(tr '\n' ',' <<<"$memberships")"
  [ "$(grep -c '^client[0-9]* testing_net$' <<<"$memberships")" = "$n" ] || fail "$file: not every agency is on testing_net"
  ! grep -qi 'trust' <(grep -v '^ *#' "$file") || fail "$file trusts a network"
  grep -qF -- '- POSTGRES_PASSWORD_FILE=/run/secrets/database_password' "$file" &&
    grep -qF -- '- SERVER_DATABASE_PASSWORD_FILE=/run/secrets/database_password' "$file" &&
    grep -qF 'file: ./.data/credentials/database.password' "$file" ||
    fail "$file does not give the database and the centrals the password secret"
  [ "$(grep -c 'endpoint_mode: dnsrr' "$file")" = $((n + 3)) ] || fail "$file has a service without DNS round robin"
  for setting in SERVER_AGENCY_KEYS=/credentials/agencies.pub SERVER_TLS_CERT=/credentials/tls.crt \
    SERVER_TLS_KEY=/credentials/tls.key './.data/credentials/central:/credentials:ro'; do
    grep -qF -- "- $setting" "$file" || fail "$file does not give the centrals $setting"
  done
  for setting in CLI_KEY=/credentials/agency.key CLI_TLS_CA=/credentials/ca.crt CLI_TLS_NAME=server \
    './.data/credentials/ca.crt:/credentials/ca.crt:ro'; do
    [ "$(grep -cF -- "- $setting" "$file")" = "$n" ] || fail "$file does not give every agency $setting"
  done
  for i in $(seq 1 "$n"); do
    grep -qF -- "- ./.data/credentials/agency-$i.key:/credentials/agency.key:ro" "$file" || fail "$file does not give agency $i its own key"
  done
done
for bad in "" "x" "1" "-1 1" "1 0" "two 1" "1 x"; do
  set +e
  # shellcheck disable=SC2086 # the words are the arguments under test
  scripts/generate-stack.sh "$work/bad.yaml" $bad >/dev/null 2>&1
  code=$?
  set -e
  [ $code = 2 ] || fail "generate-stack.sh with arguments '$bad' exited $code, not 2"
done
pass "generate-stack.sh: valid stack files for 0 to 20 agencies and 1 to 3 centrals, each agency with its own key and TLS, the database on a network no agency is on, usage errors exit 2"

# 2. Up. 8 000 bets per agency: about 8 s of the course's simulated checking, time to kill
#    a central mid-upload.
target/release/datagen --dir "$work/.data" --agencies $agencies --rows $rows --seed 13 >/dev/null
started=$(now_ms)
up_out=$(make --no-print-directory -s swarm-up "${make_vars[@]}" 2>&1) || fail "make swarm-up: $up_out"
up_line=$(grep 'swarm-up: stack' <<<"$up_out") || fail "make swarm-up said: $up_out"
deployed_ms=$(sed -n 's/.* healthy in \([0-9]*\) ms.*/\1/p' <<<"$up_line")
pass "make swarm-up: postgres and $centrals centrals healthy ${deployed_ms} ms after docker stack deploy ($(($(now_ms) - started)) ms with the images)"
started=$(now_ms)
for image in tp0-server:swarme2e tp0-client:swarme2e tp0-postgres:15 tp0-prometheus:2; do
  [ -z "$($docker image inspect -f '{{.RepoDigests}}' "$image" | tr -d '[]')" ] || fail "$image came from a registry"
done
[ -z "$($docker service ls --filter "label=com.docker.stack.namespace=$stack" --format '{{.Ports}}' | tr -d '\n ')" ] ||
  fail "a service publishes a port"
# Every central checks the agencies' keys and speaks TLS only; its health check passed, so
# the probe's TLS works too.
[ -f "$work/.data/credentials/central/agencies.pub" ] || fail "make swarm-up made no credentials"
[ "$(grep -c '^[0-9]' "$work/.data/credentials/central/agencies.pub")" = $agencies ] ||
  fail "make swarm-up made credentials for other than $agencies agencies"
for id in $(containers server); do
  lines=$($docker logs "$id" 2>&1 | grep 'action: security |') || fail "central $id logged no security line"
  line=$(head -1 <<<"$lines")
  [ "$(field "$line" mode)" = keys ] && [ "$(field "$line" transport)" = tls ] &&
    [ "$(field "$line" agencies_with_keys)" = $agencies ] || fail "central $id: $line; expected mode: keys, transport: tls"
done
pass "make swarm-up made keys for $agencies agencies; all $centrals centrals run with mode: keys, transport: tls, healthy through their TLS health check"
# 3. Every agency uploading, then one central's container killed.
uploading() {
  local i
  for i in $(seq 1 $agencies); do
    service_logs "client$i" | grep 'action: upload | result: in_progress | agency: .* | batches:' >/dev/null || return 1
  done
}
wait_for 120 uploading || fail "not every agency was uploading within 120 s"
# Before any failure: the agencies' first connections already went to several centrals.
busy=$(for id in $(containers server); do $docker logs "$id" 2>&1 | grep -c 'action: resume | result: success' || true; done | grep -vc '^0$' || true)
[ "$busy" -ge 2 ] || fail "only $busy central(s) served agencies: the service name does not spread them"
pass "DNS round robin: the agencies' first connections went to $busy of the $centrals centrals"
# The central that served the most agencies so far: surely some of them mid-upload.
victim=$(for id in $(containers server); do echo "$($docker logs "$id" 2>&1 | grep -c 'action: resume | result: success') $id"; done |
  sort -rn | head -1 | cut -d' ' -f2)
served=$($docker logs "$victim" 2>&1 | grep -c 'action: resume | result: success' || true)
# The agencies it served: what it counted for them after Prometheus's last scrape of it (at
# most one scrape interval before the kill) dies with it.
victim_agencies=" $($docker logs "$victim" 2>&1 | grep 'action: resume | result: success' |
  sed -n 's/.* agency: \([0-9]*\) .*/\1/p' | sort -un | tr '\n' ' ')"
# In the logs' own format (UTC, as in the containers): the retries from this second on.
killed_at=$(date -u '+%Y-%m-%d %H:%M:%S')
$docker kill "$victim" >/dev/null
replaced() {
  [ "$(healthy server)" -ge $centrals ] && ! $docker ps -q --no-trunc | grep "^$victim" >/dev/null
}
wait_for 120 replaced || fail "the swarm did not bring $centrals healthy centrals back within 120 s of the kill"
retried=$(for i in $(seq 1 $agencies); do
  service_logs "client$i" | grep 'action: retry | result: in_progress .* stage: upload' |
    awk -v since="$killed_at" '$1 " " $2 >= since' | head -1 || true
done | wc -l)
[ "$retried" -ge 1 ] || fail "no agency reconnected after the kill"
pass "a central that had taken $served agency connections killed mid-upload at $killed_at: the swarm replaced it, $retried agencies reconnected through the service name after it"

# 4. The results.
expected=$(target/release/expect --dir "$work/.data" --agencies $agencies --winners-file "$work/expected-winners")
total=$(sed -n 's/^total //p' <<<"$expected")
summarized() {
  local i
  for i in $(seq 1 $agencies); do
    service_logs "client$i" | grep 'action: agency_summary | result: success' >/dev/null || return 1
  done
}
wait_for 300 summarized || fail "not every agency logged its summary within 300 s"
summaries_ms=$(($(now_ms) - started))
for i in $(seq 1 $agencies); do
  summary=$(service_logs "client$i" | grep 'action: agency_summary | result: success' | tail -1)
  want=$(grep "^agency $i " <<<"$expected")
  [ "$(field "$summary" bets)" = "$(awk '{print $4}' <<<"$want")" ] || fail "client$i: $summary; expected $want"
  [ "$(field "$summary" winners)" = "$(awk '{print $6}' <<<"$want")" ] || fail "client$i: $summary; expected $want"
done
pass "every agency's summary is exact ($agencies agencies × $rows bets), the last $summaries_ms ms after the stack was up"

if [ "$database_checks" = true ]; then
  # Every agency exits 0 (a container that exited otherwise and was restarted counts too).
  finished() {
    local i id
    for i in $(seq 1 $agencies); do
      for id in $(containers "client$i"); do
        [ "$($docker inspect -f '{{.State.Status}}' "$id")" = exited ] || return 1
      done
    done
  }
  wait_for 300 finished || fail "not every agency exited within 300 s"
  finished_ms=$(($(now_ms) - started))
  for i in $(seq 1 $agencies); do
    for id in $(containers "client$i"); do
      code=$($docker inspect -f '{{.State.ExitCode}}' "$id")
      [ "$code" = 0 ] || fail "a container of client$i exited $code"
    done
    [ "$(field "$(service_logs "client$i" | grep 'action: total_winners | result: success' | tail -1)" winners)" = "$total" ] ||
      fail "client$i: total_winners is not $total"
  done
  # The winners file as an operator gets it: written from the database by a running central
  # (its SERVER_DATABASE_URL) into the mounted winners folder.
  central=$($docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_server" | head -1)
  out=$($docker exec "$central" /server export-winners /config/server.ini /winners/exported.csv 2>&1) ||
    fail "server export-winners: $out"
  exported=$work/.data/winners/exported.csv
  head -1 "$exported" | grep -qx 'agency,first_name,last_name,document,birthdate' || fail "the exported winners file has no header"
  tail -n +2 "$exported" | LC_ALL=C sort >"$work/stored-winners"
  cmp -s "$work/stored-winners" <(LC_ALL=C sort "$work/expected-winners") || fail "the database's winners differ from the expected winners"
  pass "every agency exited 0 with the total ($total), the database holds exactly the $(wc -l <"$work/expected-winners") expected winners; all done $finished_ms ms after the stack was up"
else
  # The file engine's substitute: each central's own winners file holds each row at most once
  # and only real winners, and together they hold every winner (an agency that moved to
  # another central after the kill uploaded again there from its first bet).
  for file in "$work/.data/winners/"winners-*.csv; do
    [ -z "$(tail -n +2 "$file" | LC_ALL=C sort | uniq -d)" ] || fail "$file holds a row twice"
  done
  for file in "$work/.data/winners/"winners-*.csv; do tail -n +2 "$file"; done | LC_ALL=C sort -u >"$work/stored-winners"
  cmp -s "$work/stored-winners" <(LC_ALL=C sort "$work/expected-winners") || fail "the centrals' winners files differ from the expected winners"
  pass "the centrals' own winners files hold exactly the $(wc -l <"$work/expected-winners") expected winners between them"
  banner "docker-e2e: SKIPPED: the agencies' exit codes, totals and the database's winners (no PostgreSQL engine yet: SWARM_E2E_DATABASE=true checks them)"
fi

# 4b. Prometheus, through its HTTP API (promtool inside its container: the page is not
#     published) and at the address make swarm-up printed (from this host).
prometheus_page=$(sed -n 's/^swarm-up: prometheus: \(http[^ ]*\) .*/\1/p' <<<"$up_out")
[ -n "$prometheus_page" ] || fail "make swarm-up did not say where Prometheus is: $up_out"
curl -sf --max-time 5 "${prometheus_page}-/ready" >/dev/null || fail "Prometheus does not answer at $prometheus_page, where make swarm-up said it is"
prometheus=$($docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_prometheus" | head -1)
promql() { $docker exec "$prometheus" promtool query instant -o json http://localhost:9090 "$1"; }
# Agencies that reconnected after the kill, or that the killed central served: what it counted
# for them after its last scrape is gone with it, so Prometheus may sum less (never more).
moved=" $(for i in $(seq 1 $agencies); do
  service_logs "client$i" | grep 'action: retry | result: in_progress .* stage: upload' |
    awk -v since="$killed_at" -v i="$i" '$1 " " $2 >= since { print i; exit }' || true
done | tr '\n' ' ')"
# Every central that ran, the killed one's last scrape too: the last sample of each series.
per_agency='sum by (agency) (last_over_time(lottery_bets_stored_total[1h]))'
counted_right() {
  local got i want have
  [ "$(promql 'max(lottery_complete)' | jq -r '.[0].value[1]')" = 1 ] || { cause="no central reports lottery_complete 1"; return 1; }
  got=$(promql "$per_agency" | jq -r '.[] | "\(.metric.agency) \(.value[1])"')
  for i in $(seq 1 $agencies); do
    want=$(grep "^agency $i " <<<"$expected" | awk '{print $4}')
    have=$(awk -v i="$i" '$1 == i { print $2 }' <<<"$got")
    [ -n "$have" ] || { cause="no lottery_bets_stored_total series for agency $i"; return 1; }
    if [ "$have" != "$want" ]; then
      if [[ $moved == *" $i "* || $victim_agencies == *" $i "* ]] && [ "$have" -lt "$want" ]; then continue; fi
      cause="agency $i: Prometheus sums $have bets stored, the datasets hold $want (moved after the kill: ${moved:- none}; served by the killed central: ${victim_agencies:- none})"
      return 1
    fi
  done
}
cause=""
wait_for 30 counted_right || fail "Prometheus: $cause"
prometheus_sum=$(promql 'sum(lottery_bets_stored_total)' | jq -r '.[0].value[1]')
scraped=$(promql 'count(up == 1)' | jq -r '.[0].value[1]')
pass "Prometheus ($prometheus_page) scrapes $scraped centrals found through tasks.server; per agency its sum of lottery_bets_stored_total over every central that ran equals the truth (below it only for agencies the killed central served or that moved after the kill:${moved% }); sum now across the running centrals: $prometheus_sum of $((agencies * rows))"

# 4c. The database, once the lottery is done: these checks take seconds, which the kill above
#     needs to fall mid-upload.
postgres=$(containers postgres | head -1)
postgres_ip=$($docker inspect -f "{{(index .NetworkSettings.Networks \"${stack}_database_net\").IPAddress}}" "$postgres")
[ -n "$postgres_ip" ] || fail "the database is not on ${stack}_database_net"
password_file=$work/.data/credentials/database.password
[ "$(stat -c %a "$password_file")" = 600 ] || fail "$password_file is mode $(stat -c %a "$password_file"), not 600"
# psql inside the database's container, over database_net, as role $1 with password $2.
psql_as() {
  $docker exec -e PGPASSWORD="$2" "$postgres" psql -h "$postgres_ip" -U "$1" -d lottery -v ON_ERROR_STOP=1 -qAtc "$3" 2>&1
}
# The centrals created their schema at start: their role must be able to, over the network,
# with the secret's password.
out=$(psql_as lottery "$(head -1 "$password_file")" 'create table swarm_e2e_probe (n int); drop table swarm_e2e_probe; select current_user') &&
  [ "$out" = lottery ] || fail "the database does not let role lottery create tables over database_net with its password: $out"
out=$(psql_as lottery "wrong-$(head -1 "$password_file")" 'select 1') && fail "the database took a wrong password for role lottery"
grep -q 'password authentication failed for user "lottery"' <<<"$out" || fail "a wrong password was refused otherwise than by its check: $out"
out=$(psql_as lottery "" 'select 1' </dev/null) && fail "the database let role lottery in without a password"
out=$(psql_as postgres "$(head -1 "$password_file")" 'select 1') && fail "the database lets its superuser in over the network"
hba=$($docker exec "$postgres" sh -c 'cat "$PGDATA/pg_hba.conf"')
[ "$(grep -v '^#' <<<"$hba" | grep -cw trust || true)" = 0 ] || fail "pg_hba.conf trusts someone: $(grep -w trust <<<"$hba" | head -1)"
pass "PostgreSQL (built from Debian's packages, no image pulled, no port published) lets role lottery create tables over database_net with the secret's password (scram-sha-256), refuses a wrong password, no password and its superuser; no trust line"

# From an agency's place: a throwaway container on the agencies' network only. It reaches a
# central there (so it is on that network), but the database's name does not resolve and its
# address gives no PostgreSQL answer, while the same probe from the database's own network
# namespace does (so the probe can see a database).
agency_net="--network ${stack}_testing_net"
out=$($docker run --rm $agency_net "$busybox" nc -w 2 server 12345 -e true 2>&1) ||
  fail "a container on ${stack}_testing_net cannot reach the centrals: $out"
out=$($docker run --rm $agency_net "$busybox" nc -w 2 postgres 5432 -e true 2>&1) &&
  fail "the database's name resolves and connects from ${stack}_testing_net: $out"
grep -q "bad address 'postgres'" <<<"$out" || fail "from ${stack}_testing_net the database's name failed otherwise than unresolved: $out"
[ "$(postgres_answer "--network container:$postgres" 127.0.0.1)" = N ] || fail "the PostgreSQL probe gets no answer even beside the database"
answer=$(postgres_answer "$agency_net" "$postgres_ip")
[ "$answer" != N ] && [ "$answer" != S ] || fail "the database at $postgres_ip answers a container on ${stack}_testing_net"
pass "from the agencies' network the database is out of reach: its name does not resolve and $postgres_ip:5432 gives no PostgreSQL answer (the same probe beside the database gets one; the centrals do answer there)"

# No log line of any service carries the database password.
for service in postgres server prometheus $(seq -f 'client%g' 1 $agencies); do
  [ "$(service_logs "$service" | grep -cF -- "$(head -1 "$password_file")" || true)" = 0 ] || fail "the database password is in the log of $service"
done
pass "the database password is in no service's log"

# 5. Down.
down_out=$(make --no-print-directory -s swarm-down "${make_vars[@]}" 2>&1) || fail "make swarm-down: $down_out"
[ -z "$($docker ps -aq --filter "label=com.docker.stack.namespace=$stack")" ] || fail "containers of $stack remain after make swarm-down"
for network in testing_net database_net; do
  ! $docker network inspect "${stack}_$network" >/dev/null 2>&1 || fail "network ${stack}_$network remains after make swarm-down"
done
pass "make swarm-down: the stack's containers and networks are gone"

banner "docker-e2e: all $checks swarm checks passed"
