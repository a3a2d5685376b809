#!/usr/bin/env bash
# Time to first token through the streaming function under `cargo lambda watch`.
#
#   scripts/stream-ttft.sh [RUNS]        (default 50 runs, after one warm-up run)
#
# Runs the `teal-stream` binary (as `-p teal-fn-stream` builds it; STREAM_TTFT_PROFILE=dev for a
# debug build, default release) against
# `cargo lambda watch --only-lambda-apis` and drives it through the emulated function URL (`/lambda-url/teal-stream/plain/1/sse`) with the client and fake LLM of
# `shared/examples/stream_overhead.rs`: the fake streams 20 deltas (first after 30 ms, then
# every 5 ms) and stamps each write; the client stamps each `partial-response` it reads. Prints
# the median and p95 of (client's time to first token - the fake's own) and of each later
# token's delay from the fake's write to the client's read. Measures this machine, not Lambda's.
# STREAM_TTFT_PORT / STREAM_TTFT_LLM_PORT pick the ports (default: free ones).
# STREAM_TTFT_CAPTURE=1 also captures the loopback traffic (tcpdump, as root) and splits each
# token's way into the function's leg and the emulator's (scripts/stream-legs.py).
# STREAM_TTFT_FUNCTION=PATH runs another build of the function (say, an older commit's).
set -euo pipefail

runs=${1:-50}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v cargo-lambda >/dev/null || { echo "cargo-lambda is not installed (pip install cargo-lambda)" >&2; exit 3; }

# Build first, so the watcher starts at once and no compile falls inside a measurement.
profile=${STREAM_TTFT_PROFILE:-release}
cargo build --profile "$profile" --quiet -p teal-fn-stream --bin teal-stream
cargo build --profile "$profile" --quiet -p teal-core --example stream_overhead
out="${CARGO_TARGET_DIR:-target}/$([ "$profile" = dev ] && echo debug || echo "$profile")"

# shellcheck source=scripts/watch-lib.sh
. "$root/scripts/watch-lib.sh"
port=${STREAM_TTFT_PORT:-$(free_port)}
llm_port=${STREAM_TTFT_LLM_PORT:-$(free_port)}
configs=$(mktemp -d)
log=$(mktemp)
fn_log=$(mktemp)
cat >"$configs/plain.yaml" <<'YAML'
apiVersion: skagents/v1
kind: Chat
service_name: plain
version: 1
spec:
  agent:
    model: m
    system_prompt: s
YAML

# The function's environment: the fake LLM, the agent above, the bench client's API key (the
# stream function checks it itself), secrets from the environment, warnings only in the log.
export TA_SERVICE_CONFIG="$configs" TA_BASE_URL="http://127.0.0.1:$llm_port/v1" TA_API_KEY=sk-bench \
  TA_SECRETS_BACKEND=env TA_API_KEYS_SECRET=TEAL_BENCH_API_KEYS \
  TEAL_BENCH_API_KEYS='{"bench":{"key":"teal-local-test-key-0001","agents":["*"]}}' RUST_LOG=warn
# Its own process group, so the watcher stops with everything it started. The emulator only
# emulates (`--only-lambda-apis`): the function is the prebuilt binary started below, so no
# compile and no file watch can fall inside a run.
setsid cargo lambda watch --only-lambda-apis --invoke-address 127.0.0.1 --invoke-port "$port" \
  >"$log" 2>&1 &
watch_pid=$!
fn_pid=
pcap= tcpdump_pid=
cleanup() {
  if [ -n "$tcpdump_pid" ]; then kill -INT "$tcpdump_pid" 2>/dev/null || true; fi
  if [ -n "$pcap" ]; then rm -f "$pcap" "$pcap.log"; fi
  if [ -n "$fn_pid" ]; then kill -TERM "$fn_pid" 2>/dev/null || true; wait "$fn_pid" 2>/dev/null || true; fi
  kill -TERM -- "-$watch_pid" 2>/dev/null || true
  wait "$watch_pid" 2>/dev/null || true
  rm -rf "$configs" "$log" "$fn_log"
}
trap cleanup EXIT
fail() {
  echo "$1" >&2
  cat "$log" "$fn_log" >&2
  exit 1
}

wait_listening "$port" "$watch_pid" 600

if [ -n "${STREAM_TTFT_CAPTURE:-}" ]; then
  command -v tcpdump >/dev/null || fail "STREAM_TTFT_CAPTURE needs tcpdump (apt-get install tcpdump)"
  pcap=$(mktemp --suffix=.pcap)
  tcpdump -i lo -U -w "$pcap" "tcp port $port or tcp port $llm_port" 2>"$pcap.log" &
  tcpdump_pid=$!
  # Ready once it says it listens.
  for _ in $(seq 1 100); do grep -q "listening on" "$pcap.log" 2>/dev/null && break; sleep 0.1; done
  grep -q "listening on" "$pcap.log" || fail "tcpdump did not start: $(cat "$pcap.log")"
fi

AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$port/.rt/teal-stream" AWS_LAMBDA_FUNCTION_NAME=teal-stream \
  AWS_LAMBDA_FUNCTION_VERSION='$LATEST' AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512 \
  "${STREAM_TTFT_FUNCTION:-$out/teal-stream}" >"$fn_log" 2>&1 &
fn_pid=$!

TEAL_FAKE_LLM_PORT=$llm_port "$out/examples/stream_overhead" "$runs" \
  "http://127.0.0.1:$port/lambda-url/teal-stream" || fail "the measurement failed"
kill -0 "$fn_pid" 2>/dev/null || fail "the function exited"
if [ -n "$pcap" ]; then
  kill -INT "$tcpdump_pid"
  wait "$tcpdump_pid" 2>/dev/null || true
  tcpdump_pid=
  python3 "$root/scripts/stream-legs.py" "$pcap" "$llm_port" "$port"
fi

