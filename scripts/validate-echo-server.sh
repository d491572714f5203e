#!/usr/bin/env bash
# Exercise 3: is the central an echo server? Checked with netcat from a throwaway busybox
# container on the central's own Docker network: no port is published and nothing is
# installed on the host.
#
# Sends one `Echo` frame (4-byte big-endian length, then the bincode of Request::Echo) and
# compares the answer with it byte for byte: the central answers an echo with the very bytes
# it was sent. Prints `action: test_echo_server | result: success` (exit 0) or
# `action: test_echo_server | result: fail` (exit 1).
#
# Environment: SERVER_CONTAINER (default `server`), SERVER_PORT (12345), BUSYBOX_IMAGE
# (busybox:latest; `make busybox-image` provides it where it cannot be pulled).
set -uo pipefail
docker=${DOCKER:-docker}
container=${SERVER_CONTAINER:-server}
port=${SERVER_PORT:-12345}
image=${BUSYBOX_IMAGE:-busybox:latest}

fail() {
  echo "action: test_echo_server | result: fail | reason: $*"
  exit 1
}

# The network the central is on, whatever prefix compose gave it.
network=$($docker inspect -f '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}' "$container" 2>/dev/null) ||
  fail "no container named $container (start it with make docker-compose-up)"
network=${network%% *}
[ -n "$network" ] || fail "$container is on no network"

# The frame, as octal escapes that any printf understands.
message="Hola central, soy netcat $(date +%s)"
octal() { # $1: a number, $2: how many big-endian bytes
  local n=$1 i out=""
  for ((i = $2 - 1; i >= 0; i--)); do out+=$(printf '\\%03o' $(((n >> (8 * i)) & 255))); done
  printf '%s' "$out"
}
payload_len=$((4 + 8 + ${#message}))
frame="$(octal $payload_len 4)$(octal 0 4)$(octal ${#message} 8)$message"

# In the container: write the frame, send it, keep what comes back, compare.
output=$($docker run --rm --network "$network" "$image" sh -c "
  printf '$frame' > /tmp/sent
  nc -w 5 '$container' '$port' < /tmp/sent > /tmp/received
  if cmp -s /tmp/sent /tmp/received; then echo same; else
    echo \"sent: \$(od -An -tx1 /tmp/sent | tr -s ' \n' ' ')\"
    echo \"received: \$(od -An -tx1 /tmp/received | tr -s ' \n' ' ')\"
  fi" 2>&1) || fail "the busybox container failed: $output"

if [ "$output" = same ]; then
  echo "action: test_echo_server | result: success"
else
  fail "the answer differs from the frame sent: $(echo "$output" | tr '\n' ' ')"
fi
