#!/usr/bin/env bash
# The sandbox's control panel in one run, against a fresh server of its own: the request journal,
# a fault, the account's clock, and `tokenvault listen` forwarding a triggered webhook to a local
# receiver. Each step checks what it shows, so the script fails (exit 1) when the sandbox does
# not behave as described in the README ("Testing your integration").
#
#   bash examples/sandbox.sh                 # with `tokenvault` on PATH
#   TOKENVAULT=target/debug/tokenvault bash examples/sandbox.sh
#
# Needs curl, jq and python3 (the local webhook receiver). Leaves nothing behind.
set -euo pipefail

TOKENVAULT=${TOKENVAULT:-tokenvault}
ACCOUNT=T00000001
ID=sandbox-example
SECRET=sandbox-example-secret-0123456789
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for FILE PATTERN: until a line of FILE matches, for at most 30 s
  for _ in $(seq 300); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timed out waiting for '$2' in $1:" >&2; cat "$1" >&2; return 1
}
check() { # check JQ-FILTER: the JSON on stdin satisfies it, else the script fails showing the JSON
  local json; json=$(cat)
  jq -e "$1" >/dev/null <<<"$json" || { echo "expected $1 of: $json" >&2; return 1; }
}

echo "== a fresh server (serve --dev: test account $ACCOUNT, webhooks to localhost allowed)"
PORT=$(free_port)
export TOKENVAULT_URL=http://127.0.0.1:$PORT
(cd "$WORK" && TOKENVAULT_LOG=warn exec "$TOKENVAULT" serve --dev --listen "127.0.0.1:$PORT" \
  --dev-client-id "$ID" --dev-client-secret "$SECRET" >server.log 2>&1) &
PIDS+=($!)
for _ in $(seq 300); do "$TOKENVAULT" health --url "$TOKENVAULT_URL/health" >/dev/null 2>&1 && break; sleep 0.1; done
"$TOKENVAULT" health --url "$TOKENVAULT_URL/health" >/dev/null
BASE=$TOKENVAULT_URL/v1/accounts/$ACCOUNT
TOKEN=$(curl -sf -u "$ID:$SECRET" -H 'content-type: application/json' \
  -d '{"grant_type":"client_credentials","audience":"'"$BASE"'"}' "$BASE/auth/token" | jq -r .access_token)
api() { # api METHOD PATH [BODY]: the answer's body; the status goes to $WORK/status
  local args=(-s -o "$WORK/body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $TOKEN")
  if [ $# -ge 3 ]; then args+=(-H 'content-type: application/json' -d "$3"); fi
  curl "${args[@]}" "$TOKENVAULT_URL$2" >"$WORK/status"
  cat "$WORK/body"
}
curl -sf -X POST -H "Authorization: Bearer $TOKEN" "$BASE/sandbox/reset" | check '.deleted.customers >= 0'

echo "== 1. the request journal: what the application sent, and what it got back"
api POST "/v1/accounts/$ACCOUNT/customers/users" '{"customer_id": "ada", "email": "ada@example.com"}' >/dev/null
sleep 0.5 # (entries are written in the background, within milliseconds)
api GET "/v1/accounts/$ACCOUNT/sandbox/requests?limit=1&method=POST" \
  | tee "$WORK/journal" | jq -c '.[0] | {method, path, status, request: .request.body}'
check '.[0].status == 200 and .[0].request.body.customer_id == "ada"' <"$WORK/journal"

echo "== 2. a fault: the next token creation answers 503, the retry succeeds"
api POST "/v1/accounts/$ACCOUNT/sandbox/faults" '{"method": "POST",
  "path": "/v1/accounts/*/customers/users/*/tokens", "fault": {"type": "status", "status": 503},
  "frequency": {"type": "times", "times": 1}}' | check '.frequency.remaining == 1'
TOKEN_BODY='{"type": "sha1:email", "value": "5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8"}'
api POST "/v1/accounts/$ACCOUNT/customers/users/ada/tokens" "$TOKEN_BODY" | jq -c .
check '. == 503' <"$WORK/status"
api POST "/v1/accounts/$ACCOUNT/customers/users/ada/tokens" "$TOKEN_BODY" | jq -c '{id, type}'
check '. == 201' <"$WORK/status"
sleep 0.5
api GET "/v1/accounts/$ACCOUNT/sandbox/requests?status=5xx" | tee "$WORK/journal" | jq -c '.[] | {path, status, fault}'
check 'length == 1 and (.[0].fault | startswith("rule "))' <"$WORK/journal"

echo "== 3. the clock: the account lives on 1 March 2030, then a month later"
api PUT "/v1/accounts/$ACCOUNT/sandbox/clock" '{"time": "2030-03-01T09:00:00Z"}' | jq -c '{time, offset_ms}'
api POST "/v1/accounts/$ACCOUNT/customers/users" '{"customer_id": "grace"}' | tee "$WORK/customer" | jq -c '{customer_id, created_at}'
check '.created_at | startswith("2030-03-01T09:0")' <"$WORK/customer"
api PUT "/v1/accounts/$ACCOUNT/sandbox/clock" '{"advance_seconds": 2592000}' | tee "$WORK/clock" | jq -c '{time}'
check '.time | startswith("2030-03-31T09:0")' <"$WORK/clock"
api DELETE "/v1/accounts/$ACCOUNT/customers/users/grace" | tee "$WORK/deleted" | jq -c '{customer_id, deleted_at}'
check '.deleted_at | startswith("2030-03-31T09:0")' <"$WORK/deleted"
api DELETE "/v1/accounts/$ACCOUNT/sandbox/clock" | check '.offset_ms == 0'

echo "== 4. webhooks: tokenvault listen forwards a triggered event to a local receiver"
RECEIVER_PORT=$(free_port)
python3 - "$RECEIVER_PORT" >"$WORK/received" 2>/dev/null <<'PY' &
import http.server, sys
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        print(self.headers.get("event"), self.headers.get("event-signature") is not None, flush=True)
        self.send_response(200)
        self.end_headers()
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver).serve_forever()
PY
PIDS+=($!)
for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$RECEIVER_PORT/" && break; sleep 0.1; done
"$TOKENVAULT" listen --account "$ACCOUNT" --forward-to "http://127.0.0.1:$RECEIVER_PORT/hooks" \
  --client-id "$ID" --client-secret "$SECRET" --secret-file "$WORK/listen-secret" >"$WORK/listen" 2>&1 &
LISTEN=$!
PIDS+=("$LISTEN")
wait_for "$WORK/listen" '^Ready'
api POST "/v1/accounts/$ACCOUNT/sandbox/webhooks/trigger" '{"event": "checkout_token_add"}' | jq -c '{event, created}'
wait_for "$WORK/received" '^checkout_token_add True$'
wait_for "$WORK/listen" 'checkout_token_add .* 200$'
sed -E 's/^[0-9TZ:-]+ /<time> /; s/[0-9a-f-]{36}/<id>/g' "$WORK/listen" | grep -- ' -> '
kill -TERM "$LISTEN"
wait "$LISTEN" 2>/dev/null || true
grep -q '^Removed subscription' "$WORK/listen"
api GET "/v1/accounts/$ACCOUNT/hooks/subscriptions" | check 'length == 0'
echo "== all as described"
