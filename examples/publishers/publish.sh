#!/usr/bin/env bash
# Publishes a message to hasses twice: on the control port (bash's /dev/tcp,
# no tool needed) and through the HTTP API (curl).
#   ./publish.sh TOKEN MESSAGE
# Environment: HASSES_CTL (127.0.0.1:8085), HASSES_PUB
# (http://127.0.0.1:8086/publish), HASSES_CTL_SECRET (if the server has one).
# With netcat instead of /dev/tcp: printf 'room1=hello;' | nc -q1 127.0.0.1 8085
set -euo pipefail
token=${1:-room1} message=${2:-hello from the shell}
ctl=${HASSES_CTL:-127.0.0.1:8085} pub=${HASSES_PUB:-http://127.0.0.1:8086/publish}
secret=${HASSES_CTL_SECRET:-}

# Control port: a plain unit, "token=message", ended by ';'. No reply.
exec 3<>"/dev/tcp/${ctl%:*}/${ctl##*:}"
if [ -n "$secret" ]; then
  printf 'auth %s\n' "$secret" >&3
  read -r -t 5 reply <&3 # {"auth": "ok"}; read, so that closing does not reset the connection
fi
printf '%s=%s;' "$token" "$message" >&3
exec 3>&-
echo "control port: sent"

# HTTP API: form fields; curl encodes them.
auth=()
[ -n "$secret" ] && auth=(-H "Authorization: Bearer $secret")
printf 'HTTP API: %s\n' "$(curl -sS --fail-with-body "${auth[@]}" "$pub" --data-urlencode "token=$token" --data-urlencode "data=$message")"
