#!/usr/bin/env bash
# Runs the whole lottery on this machine as plain processes: one central and N agencies on
# 127.0.0.1, each agency over its dataset in .data/ (generated when missing). Every line of
# output is prefixed with the process it came from. Ctrl-C stops everything gracefully.
#
# Environment: AGENCIES (default 5), PORT (default 12345), RESUME=1 to go on with the
# previous lottery instead of starting a new one, and any SERVER_* or CLI_* setting, e.g.
# SERVER_WINNER_DELAY_MS=0 for a fast run. The agencies ask again for the total every 100 ms
# (CLI_WINNERS_RETRY_PERIOD), not every 5 s as in the containers, so their partial answers
# show at that pace; either way the central holds each query and answers it as soon as the
# last agency is done.
#
# A dataset already in .data/ (the course's own, say) is used as it is: datagen writes only
# the missing files and never rewrites one.
#
# Every agency proves who it is with its own key from .data/credentials/ (made there when the
# folder holds no set for exactly these agencies; `make credentials` makes a fresh one), and
# the central checks it. TLS=1 also encrypts the connections.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
agencies=${AGENCIES:-5}
port=${PORT:-12345}

cargo build --release --bins --quiet
target/release/datagen --dir .data --agencies "$agencies"
credentials=.data/credentials
if ! [ -f "$credentials/central/agencies.pub" ] || ! [ -f "$credentials/central/tls.crt" ] ||
  [ "$(grep -c '^[0-9]' "$credentials/central/agencies.pub")" != "$agencies" ]; then
  target/release/credentials "$credentials" "$agencies" server localhost 127.0.0.1
fi
server_tls=()
if [ "${TLS:-0}" = 1 ]; then
  server_tls=(SERVER_TLS_CERT="$credentials/central/tls.crt" SERVER_TLS_KEY="$credentials/central/tls.key")
fi

# One run of `make run` is one lottery: the previous winners file and its journal go, unless
# RESUME=1 asks to go on with the lottery they hold (the central recovers it at start).
storage=${SERVER_STORAGE_PATH:-.data/winners.csv}
[ "${RESUME:-0}" = 1 ] || rm -f "$storage" "$storage.journal"

log_dir=$(mktemp -d)
server_pid=""
client_pids=()
stop_all() {
  for pid in "${client_pids[@]}" $server_pid; do kill -TERM "$pid" 2>/dev/null || true; done
}
trap stop_all INT TERM

env SERVER_PORT="$port" SERVER_AGENCIES="$agencies" SERVER_STORAGE_PATH="$storage" \
  SERVER_AGENCY_KEYS="$credentials/central/agencies.pub" "${server_tls[@]}" \
  target/release/server config/server.ini > >(tee "$log_dir/server.log" | sed -u 's/^/server   | /') 2>&1 &
server_pid=$!

# Start the agencies once the central listens (bounded: 10 s).
for _ in $(seq 100); do
  grep -q 'action: accept_connections' "$log_dir/server.log" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { echo "the central did not start"; exit 1; }
  sleep 0.1
done

for i in $(seq 1 "$agencies"); do
  client_tls=()
  if [ "${TLS:-0}" = 1 ]; then
    client_tls=(CLI_TLS_CA="$credentials/ca.crt" CLI_TLS_NAME=localhost)
  fi
  env CLI_ID="$i" CLI_SERVER_ADDRESS="127.0.0.1:$port" CLI_DATA_PATH="${CLI_DATA_PATH:-.data/dataset-$i.csv}" \
    CLI_WINNERS_RETRY_PERIOD="${CLI_WINNERS_RETRY_PERIOD:-100ms}" CLI_KEY="$credentials/agency-$i.key" "${client_tls[@]}" \
    target/release/client config/client.yaml 2>&1 | sed -u "s/^/client$i  | /" &
  client_pids+=($!)
done

status=0
for pid in "${client_pids[@]}"; do wait "$pid" || status=1; done
kill -TERM "$server_pid" 2>/dev/null || true
wait "$server_pid" || status=1
rm -rf "$log_dir"
echo "winners file: $storage"
exit $status
