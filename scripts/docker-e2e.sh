#!/usr/bin/env bash
# Part 1 of the assignment, end to end in real containers, through the Makefile's own targets:
#
#   1. scripts/generate-compose.sh: valid compose files for several N, usage errors exit 2,
#      and docker-compose-dev.yaml is its output for 2 agencies.
#   2. A lottery of 5 agencies: every client exits 0, and each agency_summary and
#      total_winners line, and the winners file, equal what `expect` computes from the
#      datasets with the rule's definition.
#   3. Exercise 3: scripts/validate-echo-server.sh succeeds against the running central.
#   4. Exercise 2: a changed mounted config (debug logs, 25-bet batches) takes effect on the
#      next `make docker-compose-up` with the very same images.
#   5. Exercise 4: `make docker-compose-down` while agencies upload: every container exits 0
#      with its closing lines logged, and every winner an agency saw acknowledged is on disk;
#      then `docker stop server` alone (its default 10 s grace), mid-upload.
#   6. A crash: the central's container SIGKILLed mid-upload and started again; it recovers
#      from its journal, the agencies resume, and the results are exact.
#   7. TLS in compose (`generate-compose.sh ... tls`, 3 agencies): the central checks the
#      agencies' keys over TLS, its health check passes under TLS, the results are exact.
#   8. A forged `AgencyDone` for agency 1, sent with netcat from a throwaway container before
#      the agencies start, is refused as `Unauthenticated`; the lottery after it is exact.
#   9. scripts/swarm-e2e.sh: several centrals on Docker Swarm, with keys and TLS.
#
# Where no Docker engine answers it says so loudly and exits 0, unless CI=true: then it fails.
# It works in target/e2e (its own config copies, datasets, credentials and winners), tags its
# images `e2e`, and removes its containers, network and images on the way out, even after a
# failure (the swarm check cleans up after itself the same way).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
docker=${DOCKER:-docker}

say() { echo "docker-e2e: $*"; }
banner() { printf '\n%s\n%s\n%s\n\n' "==================================================================" "$*" "=================================================================="; }

if ! $docker info >/dev/null 2>&1; then
  if [ "${CI:-}" = true ]; then
    banner "docker-e2e: FAIL: no Docker engine answers, and with CI=true the Docker check is mandatory"
    exit 1
  fi
  banner "docker-e2e: SKIPPED: no Docker engine answers; Part 1 (exercises 1-4) was NOT checked"
  exit 0
fi
# What the swarm check needs beyond the engine, said first, in one line, before any build.
if ! why=$(scripts/postgres-image.sh --check 2>&1); then
  banner "docker-e2e: FAIL: $why"
  exit 1
fi

for name in server client1 client2 client3 client4 client5; do
  if $docker inspect "$name" >/dev/null 2>&1; then
    say "FAIL: a container named $name exists (make docker-compose-down first): the check needs the course's names"
    exit 1
  fi
done

work=target/e2e
compose_file=$work/docker-compose.yaml
agencies=5
make_vars=(COMPOSE_FILE="$compose_file" COMPOSE_PROJECT=tp0e2e IMAGE_TAG=e2e)
checks=0
built_busybox=false
pass() {
  checks=$((checks + 1))
  say "ok: $*"
}
fail() {
  say "FAIL: $*"
  exit 1
}

cleanup() {
  status=$?
  if [ $status -ne 0 ]; then
    say "dumping the containers' logs after the failure"
    for name in server $(seq -f 'client%g' 1 $agencies); do
      $docker logs "$name" 2>&1 | sed "s/^/$name | /" | tail -40 || true
    done
  fi
  make --no-print-directory -s docker-compose-down "${make_vars[@]}" >/dev/null 2>&1 || true
  $docker rmi -f tp0-server:e2e tp0-client:e2e >/dev/null 2>&1 || true
  if $built_busybox; then $docker rmi -f busybox:latest >/dev/null 2>&1 || true; fi
  [ $status -eq 0 ] || banner "docker-e2e: FAIL (exit $status); containers, network and images removed"
}
trap cleanup EXIT

up() { make --no-print-directory -s docker-compose-up "${make_vars[@]}"; }
# The Compose command the Makefile uses.
DOCKER_COMPOSE_CMD=$($docker compose version >/dev/null 2>&1 && echo "$docker compose" || echo docker-compose)
down() { make --no-print-directory -s docker-compose-down "${make_vars[@]}"; }
# The value of `key: value` in a log line.
field() { sed -n "s/.*| $2: \([^ |]*\).*/\1/p" <<<"$1"; }

# Waits (bounded) for every client to exit and checks each exited 0.
wait_clients() {
  for i in $(seq 1 $agencies); do
    code=$(timeout 300 $docker wait "client$i") || fail "client$i did not exit within 300 s"
    [ "$code" = 0 ] || fail "client$i exited with $code"
  done
}

# Waits (bounded) until every client has logged upload progress: all are mid-upload.
wait_uploading() {
  for i in $(seq 1 $agencies); do
    for _ in $(seq 300); do
      $docker logs "client$i" 2>&1 | grep -q 'action: upload | result: in_progress | agency: .* | batches:' && break
      sleep 0.1
    done
  done
}

# Compares each client's summary and total, and the winners file, with `expect`.
check_results() {
  local expected total
  expected=$(target/release/expect --dir "$work/.data" --agencies $agencies --winners-file "$work/expected-winners")
  total=$(sed -n 's/^total //p' <<<"$expected")
  for i in $(seq 1 $agencies); do
    local logs summary want
    logs=$($docker logs "client$i" 2>&1)
    summary=$(grep 'action: agency_summary | result: success' <<<"$logs") || fail "client$i logged no agency_summary"
    want=$(grep "^agency $i " <<<"$expected")
    [ "$(field "$summary" bets)" = "$(awk '{print $4}' <<<"$want")" ] || fail "client$i: $summary; expected $want"
    [ "$(field "$summary" winners)" = "$(awk '{print $6}' <<<"$want")" ] || fail "client$i: $summary; expected $want"
    [ "$(field "$(grep 'action: total_winners | result: success' <<<"$logs")" winners)" = "$total" ] ||
      fail "client$i: total_winners is not $total"
  done
  head -1 "$work/.data/winners/winners.csv" | grep -qx 'agency,first_name,last_name,document,birthdate' ||
    fail "the winners file has no header"
  tail -n +2 "$work/.data/winners/winners.csv" | LC_ALL=C sort | cmp -s - <(LC_ALL=C sort "$work/expected-winners") ||
    fail "the winners file differs from the expected winners"
  pass "$1: every agency's summary, the total ($total) and the winners file ($(wc -l <"$work/expected-winners") rows) are right"
}

banner "docker-e2e: Part 1 in real containers"
say "building the binaries and the images"
cargo build --release --locked --quiet -p testkit --bin datagen --bin expect
rm -rf "$work"
mkdir -p "$work"
cp -r config "$work/config"

# 1. The generator.
for n in 0 1 5 20; do
  scripts/generate-compose.sh "$work/gen-$n.yaml" $n >/dev/null
  (cd "$work" && docker-compose -f "gen-$n.yaml" config -q 2>/dev/null || $docker compose -f "gen-$n.yaml" config -q) ||
    fail "the generated compose file for $n agencies is not valid"
  [ "$(grep -c 'container_name: client' "$work/gen-$n.yaml")" = $n ] || fail "gen-$n.yaml does not hold $n clients"
  grep -q "SERVER_AGENCIES=$n\$" "$work/gen-$n.yaml" || fail "gen-$n.yaml does not expect $n agencies"
done
for bad in "" "x" "-1" "two"; do
  set +e
  scripts/generate-compose.sh "$work/bad.yaml" $bad >/dev/null 2>&1
  code=$?
  set -e
  [ $code = 2 ] || fail "generate-compose.sh with clients '$bad' exited $code, not 2"
done
scripts/generate-compose.sh "$work/gen-2.yaml" 2 >/dev/null
diff -u docker-compose-dev.yaml "$work/gen-2.yaml" || fail "docker-compose-dev.yaml is not the generator's output for 2"
pass "generate-compose.sh: valid files for 0, 1, 5 and 20 agencies, usage errors exit 2, docker-compose-dev.yaml current"

# 2. A whole lottery. Small datasets keep the course's 1 ms per bet to a few seconds.
target/release/datagen --dir "$work/.data" --agencies $agencies --rows 1500 --seed 7 >/dev/null
scripts/generate-compose.sh "$compose_file" $agencies >/dev/null
# What a plain `docker-compose up` before any `make` used to leave: directories where a
# dataset and keys belong. `make docker-compose-up` recovers from it.
rm "$work/.data/dataset-5.csv"
mkdir -p "$work/.data/dataset-5.csv" "$work/.data/credentials/central/agencies.pub" "$work/.data/credentials/agency-2.key"
up
for path in dataset-5.csv credentials/central/agencies.pub credentials/agency-2.key; do
  [ -f "$work/.data/$path" ] || fail "make docker-compose-up left $path a directory"
done
pass "make docker-compose-up replaced the directories left where a dataset and keys belong"
image_ids=$($docker image inspect -f '{{.Id}}' tp0-server:e2e tp0-client:e2e)
for image in tp0-server:e2e tp0-client:e2e; do
  size=$($docker image inspect -f '{{.Size}}' $image)
  [ "$size" -lt 10000000 ] || fail "$image is $size bytes, not a few MB"
done
[ -z "$($docker port server)" ] || fail "the central publishes a port"
wait_clients
pass "5 agencies in containers exited 0, images $(($($docker image inspect -f '{{.Size}}' tp0-server:e2e) / 1000)) kB and $(($($docker image inspect -f '{{.Size}}' tp0-client:e2e) / 1000)) kB, no port published"
check_results "lottery"

# 3. The netcat check, from inside testing_net.
if ! $docker image inspect busybox:latest >/dev/null 2>&1; then built_busybox=true; fi
make --no-print-directory -s busybox-image >/dev/null
out=$(scripts/validate-echo-server.sh) || fail "validate-echo-server.sh: $out"
[ "$out" = "action: test_echo_server | result: success" ] || fail "validate-echo-server.sh said: $out"
pass "exercise 3: $out"
down

# A mounted file that is missing stops Compose naming it; no directory is made in its place.
mv "$work/.data/dataset-1.csv" "$work/dataset-1.csv.aside"
set +e
said=$(cd "$work" && IMAGE_TAG=e2e $DOCKER_COMPOSE_CMD -f "$(basename "$compose_file")" -p tp0e2e up --no-start --no-deps client1 2>&1)
code=$?
set -e
[ $code -ne 0 ] && grep -q 'dataset-1.csv' <<<"$said" || fail "a missing dataset did not stop Compose naming it: $said"
[ ! -e "$work/.data/dataset-1.csv" ] || fail "Compose made something where the missing dataset belongs"
mv "$work/dataset-1.csv.aside" "$work/.data/dataset-1.csv"
down
pass "a missing mounted file stops Compose with its path; nothing is made in its place"

# 4. A changed mounted config takes effect with no rebuild.
sed -i 's/^LOGGING_LEVEL = INFO$/LOGGING_LEVEL = DEBUG/' "$work/config/server.ini"
sed -i 's/maxAmount: 100 /maxAmount: 25 /' "$work/config/client.yaml"
grep -q '^LOGGING_LEVEL = DEBUG$' "$work/config/server.ini" && grep -q 'maxAmount: 25 ' "$work/config/client.yaml" ||
  fail "could not edit the config copies"
up
[ "$($docker image inspect -f '{{.Id}}' tp0-server:e2e tp0-client:e2e)" = "$image_ids" ] ||
  fail "the images changed between runs: the config must not be baked in"
wait_clients
server_logs=$($docker logs server 2>&1)
grep -q 'action: config | result: success .*logging_level: DEBUG' <<<"$server_logs" || fail "the central did not read LOGGING_LEVEL = DEBUG"
grep -q 'action: batch_received .* bets: 25$' <<<"$server_logs" || fail "no 25-bet batch logged at debug level"
! grep -q 'action: batch_received .* bets: \(2[6-9]\|[3-9][0-9]\|100\)$' <<<"$server_logs" || fail "a batch over 25 bets arrived"
check_results "changed config"
pass "exercise 2: debug logs and 25-bet batches after editing the mounted files, same images"
down
git -C "$root" diff --quiet -- config || fail "the check edited config/ itself"

# 5. Graceful stop while the agencies upload (20 000 bets each: about 20 s of work).
# datagen never rewrites a dataset: the previous step's (our own) go first.
rm -f "$work"/.data/dataset-*.csv
target/release/datagen --dir "$work/.data" --agencies $agencies --rows 20000 --seed 8 >/dev/null
cp config/*.ini config/*.yaml "$work/config/"
up
wait_uploading
# `down` removes the containers: keep their logs and exit codes as they stop.
pids=()
for name in server $(seq -f 'client%g' 1 $agencies); do
  $docker logs -f "$name" >"$work/logs-$name" 2>&1 &
  pids+=($!)
  $docker wait "$name" >"$work/exit-$name" &
  pids+=($!)
done
started=$(date +%s%N)
down_out=$(down 2>&1) || fail "make docker-compose-down failed: $down_out"
for pid in "${pids[@]}"; do wait "$pid" || true; done
stop_ms=$((($(date +%s%N) - started) / 1000000))
for name in server $(seq -f 'client%g' 1 $agencies); do
  [ "$(cat "$work/exit-$name")" = 0 ] || fail "$name exited '$(cat "$work/exit-$name")' on stop (137 means killed by the timeout)"
done
for line in 'action: signal | result: success | signal: SIGTERM' 'action: close_listener | result: success' \
  'action: join_connections | result: success' 'action: close_store | result: success' 'action: exit | result: success'; do
  grep -qF "$line" "$work/logs-server" || fail "the central did not log '$line'"
done
mkdir -p "$work/acknowledged"
for i in $(seq 1 $agencies); do
  logs=$work/logs-client$i
  for line in 'action: signal | result: success | signal: SIGTERM' "action: close_connection | result: success | agency: $i" \
    "action: exit | result: success | agency: $i | outcome: stopped"; do
    grep -qF "$line" "$logs" || fail "client$i did not log '$line'"
  done
  stopped=$(grep -F "action: shutdown | result: success | agency: $i | stage: upload" "$logs") ||
    fail "client$i was not stopped during its upload"
  # The bets the central acknowledged are a prefix of the dataset: their winners must be stored.
  head -n "$(field "$stopped" bets_sent)" "$work/.data/dataset-$i.csv" >"$work/acknowledged/dataset-$i.csv"
done
target/release/expect --dir "$work/acknowledged" --agencies $agencies --winners-file "$work/acknowledged-winners" >/dev/null
target/release/expect --dir "$work/.data" --agencies $agencies --winners-file "$work/expected-winners" >/dev/null
stored=$(tail -n +2 "$work/.data/winners/winners.csv" | LC_ALL=C sort)
[ -z "$(uniq -d <<<"$stored")" ] || fail "the winners file holds a row twice"
[ -z "$(LC_ALL=C comm -23 "$work/acknowledged-winners" <(echo "$stored"))" ] || fail "an acknowledged winner is missing from the winners file"
[ -z "$(LC_ALL=C comm -13 "$work/expected-winners" <(echo "$stored"))" ] || fail "the winners file holds a row that is no winner"
pass "exercise 4: make docker-compose-down mid-upload: all $((agencies + 1)) containers exited 0 in $stop_ms ms, closing lines logged, $(wc -l <"$work/acknowledged-winners") acknowledged winners all stored"

# 6. The central alone stopped (`docker stop server`, the default 10 s grace) while every
#    agency is connected and pipelining batches: it answers the batches in hand, closes each
#    connection and exits 0 within a second, never 137.
up
wait_uploading
$docker logs -f server >"$work/logs-server" 2>&1 &
logs_pid=$!
started=$(date +%s%N)
code=$($docker stop server >/dev/null && $docker inspect -f '{{.State.ExitCode}}' server)
stop_ms=$((($(date +%s%N) - started) / 1000000))
wait $logs_pid || true
[ "$code" = 0 ] || fail "docker stop server: the central exited $code (137 means killed at the end of the grace)"
# A second for the central, and some room for Docker's own work around the signal.
[ "$stop_ms" -lt 3000 ] || fail "docker stop server took $stop_ms ms"
closed=$(grep -c 'action: close_connection | result: success .* reason: shutdown' "$work/logs-server" || true)
[ "$closed" -ge $agencies ] || fail "the central closed $closed agency connections on shutdown, not $agencies"
grep -qF 'action: exit | result: success' "$work/logs-server" || fail "the central did not log its exit"
stored=$(tail -n +2 "$work/.data/winners/winners.csv" | LC_ALL=C sort)
[ -z "$(uniq -d <<<"$stored")" ] || fail "the winners file holds a row twice"
[ -z "$(LC_ALL=C comm -13 "$work/expected-winners" <(echo "$stored"))" ] || fail "the winners file holds a row that is no winner"
for i in $(seq 1 $agencies); do
  # The last progress line counts winners already acknowledged: at least those are stored.
  seen=$($docker logs "client$i" 2>&1 | grep 'action: upload | result: in_progress | agency: .* | winners:' | tail -1)
  rows=$(grep -c "^$i," <<<"$stored" || true)
  [ "$rows" -ge "$(field "$seen" winners)" ] || fail "agency $i saw $(field "$seen" winners) winners acknowledged, $rows stored"
done
pass "exercise 4: docker stop server mid-upload: exit 0 in $stop_ms ms, $closed connections closed, every acknowledged winner stored"
down >/dev/null 2>&1 || true

# 7. A crash of the central: SIGKILL its container mid-upload and start it again. It
#    recovers from its journal on the mounted volume, the agencies reconnect and resume, and
#    the lottery ends exactly as if nothing had happened.
rm -f "$work"/.data/dataset-*.csv
target/release/datagen --dir "$work/.data" --agencies $agencies --rows 4000 --seed 9 >/dev/null
up
wait_uploading
$docker kill server >/dev/null
$docker start server >/dev/null
wait_clients
grep -q 'action: store_open | result: success | mode: recovered' <<<"$($docker logs server 2>&1)" ||
  fail "the restarted central did not recover from its journal"
resumed=$(for i in $(seq 1 $agencies); do $docker logs "client$i" 2>&1; done | grep -c 'action: resume | result: success' || true)
[ "$resumed" -ge $agencies ] || fail "only $resumed agencies resumed after the crash"
check_results "crash"
pass "a central SIGKILLed mid-upload and started again: recovered, $agencies agencies resumed, results exact"
down >/dev/null 2>&1 || true

# 8. TLS in compose: the course's flow with the third argument. The credentials are made
#    afresh for 3 agencies (the set in the folder is for 5). No netcat here: the port speaks
#    TLS only.
agencies=3
scripts/generate-compose.sh "$compose_file" $agencies tls >/dev/null
up
wait_clients
[ "$($docker inspect -f '{{.State.Health.Status}}' server)" = healthy ] ||
  fail "the TLS central is not healthy: its health check does not work under TLS"
[ "$(grep -c '^[0-9]' "$work/.data/credentials/central/agencies.pub")" = $agencies ] ||
  fail "make docker-compose-up did not make credentials for $agencies agencies"
security=$($docker logs server 2>&1 | grep 'action: security |') || fail "the central logged no security line"
[ "$(field "$security" mode)" = keys ] && [ "$(field "$security" transport)" = tls ] ||
  fail "the central said '$security', not mode: keys and transport: tls"
check_results "TLS in compose"
pass "TLS in compose: the central runs with mode: keys and transport: tls, healthy through its TLS health check"
down >/dev/null 2>&1 || true

# 9. An attacker on testing_net, before any agency starts: `AgencyDone { agency: 1,
#    batches: 0 }` with no proof (4-byte length 16, then bincode: variant 2, agency 1,
#    batches 0, big-endian). Plain TCP, the course's default, so that netcat can speak. The
#    answer must be `Error` (variant 5) of kind `Unauthenticated` (index 12), and agency 1
#    must still upload its whole dataset.
if $docker compose version >/dev/null 2>&1; then compose=("$docker" compose); else compose=(docker-compose); fi
# As make runs it: the e2e images, the containers as this user.
compose=(env IMAGE_TAG=e2e HOST_UID="$(id -u)" HOST_GID="$(id -g)" "${compose[@]}" -f "$compose_file" -p tp0e2e)
scripts/generate-compose.sh "$compose_file" $agencies >/dev/null
rm -f "$work/.data/winners/"*
"${compose[@]}" up -d server >/dev/null 2>&1 || fail "could not start the central alone"
server_healthy() { [ "$($docker inspect -f '{{.State.Health.Status}}' server)" = healthy ]; }
for _ in $(seq 300); do server_healthy && break; sleep 0.1; done
server_healthy || fail "the central alone was not healthy within 30 s"
server_id=$($docker inspect -f '{{.Id}}' server)
forged='\000\000\000\020\000\000\000\002\000\000\000\001\000\000\000\000\000\000\000\000'
answer=$($docker run --rm --network testing_net busybox:latest sh -c \
  "printf '$forged' | nc -w 3 server 12345 | od -An -tx1" | tr -s ' \n' ' ' | sed 's/^ //') ||
  fail "the busybox container failed: $answer"
read -ra bytes <<<"$answer"
[ "${#bytes[@]}" -ge 12 ] || fail "the central answered the forged AgencyDone with '$answer'"
[ "${bytes[*]:4:4}" = "00 00 00 05" ] && [ "${bytes[*]:8:4}" = "00 00 00 0c" ] ||
  fail "the central's answer to the forged AgencyDone is not an Unauthenticated error: $answer"
refusals=$($docker logs server 2>&1 | grep -c 'action: authenticate | result: fail | peer: ' || true)
[ "$refusals" = 1 ] || fail "the central logged $refusals refusals for the forged AgencyDone, not 1"
"${compose[@]}" up -d >/dev/null 2>&1 || fail "could not start the agencies"
[ "$($docker inspect -f '{{.Id}}' server)" = "$server_id" ] || fail "starting the agencies replaced the central"
wait_clients
check_results "after a forged AgencyDone"
pass "a forged AgencyDone for agency 1 from a peer on testing_net: answered Error Unauthenticated (${bytes[*]:0:12}), one log line; the lottery after it exact"
down >/dev/null 2>&1 || true

banner "docker-e2e: all $checks compose checks passed"

# 10. Several centrals on Docker Swarm, with keys and TLS: a check of its own, which cleans
#     up its stack, volume and images even when it fails. Compose is down by now.
scripts/swarm-e2e.sh || exit $?
