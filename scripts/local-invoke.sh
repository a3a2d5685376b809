#!/usr/bin/env bash
# Runs one Lambda function locally under `cargo lambda watch` and invokes it with an event file.
#
#   scripts/local-invoke.sh FUNCTION EVENT
#
# FUNCTION: invoke | stream | health | ready | tools | authorizer (binary teal-FUNCTION)
# EVENT:    a file, or a name in events/ (`health` = events/health.json)
#
# The function gets this shell's environment (TA_SERVICE_CONFIG, TA_BASE_URL, TA_API_KEY,
# TA_API_KEYS_SECRET, the variables the agent configs reference…). The response goes to stdout,
# the function's logs to stderr when it fails. LOCAL_INVOKE_PORT picks the port (default: a free
# one), LOCAL_INVOKE_TIMEOUT the seconds an invocation may take (default 60), LOCAL_INVOKE_LOG a file
# to keep the function's output in (its JSON logs and EMF metric lines), LOCAL_INVOKE_TIMES how
# many times to invoke it (default 1). `stream` answers
# with a streamed body, which `cargo lambda invoke` cannot read: it goes to the emulated
# function URL with curl instead.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 FUNCTION EVENT" >&2
  exit 2
fi
fn=$1
event=$2
root=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -f "$event" ]; then
  event="$root/events/${event%.json}.json"
fi
[ -f "$event" ] || { echo "no event file $2 (looked in events/)" >&2; exit 2; }
command -v cargo-lambda >/dev/null || { echo "cargo-lambda is not installed (pip install cargo-lambda)" >&2; exit 3; }

cd "$root"
# Build first, so a compile error shows here and the invocation timeout only covers the run.
cargo build --quiet --bin "teal-$fn"

# shellcheck source=scripts/watch-lib.sh
. "$root/scripts/watch-lib.sh"
port=${LOCAL_INVOKE_PORT:-$(free_port)}
log=$(mktemp)
# Its own process group, so the watcher, cargo and the function all stop together.
setsid cargo lambda watch --ignore-changes --invoke-address 127.0.0.1 --invoke-port "$port" \
  --timeout "${LOCAL_INVOKE_TIMEOUT:-60}" --bin "teal-$fn" >"$log" 2>&1 &
watch_pid=$!
cleanup() {
  kill -TERM -- "-$watch_pid" 2>/dev/null || true
  wait "$watch_pid" 2>/dev/null || true
  if [ -n "${LOCAL_INVOKE_LOG:-}" ]; then cp "$log" "$LOCAL_INVOKE_LOG"; fi
  rm -f "$log"
}
trap cleanup EXIT
fail() {
  echo "$1" >&2
  cat "$log" >&2
  exit 1
}

# Wait for the emulator to listen (it compiles the function first when needed).
wait_listening "$port" "$watch_pid" 1200

if [ "$fn" = stream ]; then
  # Method, path, headers and body from the event, to the emulated function URL.
  mapfile -t req < <(python3 - "$event" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
print(e["requestContext"]["http"]["method"])
print(e["rawPath"])
print(e.get("body") or "")
for k, v in e.get("headers", {}).items():
    if k.lower() not in ("host", "content-length"):
        print(f"{k}: {v}")
PY
)
  args=()
  for h in "${req[@]:3}"; do args+=(-H "$h"); done
  curl -sS -N --fail-with-body --max-time "${LOCAL_INVOKE_TIMEOUT:-60}" -X "${req[0]}" "${args[@]}" --data-raw "${req[2]}" \
    "http://127.0.0.1:$port/lambda-url/teal-$fn${req[1]}" || fail "the stream function failed"
else
  # LOCAL_INVOKE_TIMES=2: the first invocation's EMF lines (flushed just after its response) are
  # then surely in the log; the last response is printed.
  for i in $(seq 1 "${LOCAL_INVOKE_TIMES:-1}"); do
    out=$(cargo lambda invoke --invoke-address 127.0.0.1 --invoke-port "$port" "teal-$fn" --data-file "$event") \
      || fail "the $fn function failed (invocation $i)"
  done
  printf '%s' "$out"
fi
echo
