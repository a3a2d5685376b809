#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need, then runs the
# format check, clippy and every test of the workspace. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust (rustup) first" >&2
  exit 1
fi

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  as_root apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

log "tools"
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi
# Redis: the tests use a real server on 127.0.0.1:6379 (TEAL_TEST_REDIS_URL to change) and start
# their own on free ports for fault tests; openssl makes the TLS (rediss://) test's certificates.
command -v redis-server >/dev/null && command -v openssl >/dev/null || apt_install redis-server openssl
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 50); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
# moto in server mode: the S3 / Secrets Manager / ElastiCache emulator the adapter tests reach with
# the real SDK (started as `python3 scripts/moto-server.py`, which fixes one answer for the Rust SDK).
command -v moto_server >/dev/null && python3 -c 'import moto.server' 2>/dev/null || python3 -m pip install --quiet 'moto[server]'
# Prometheus: a real server scrapes `teal serve` in the metrics test; promtool checks
# infra/prometheus (scripts/lint-infra.sh).
command -v prometheus >/dev/null && command -v promtool >/dev/null || apt_install prometheus
# util-linux `script`: the CLI test runs `teal backup` on a pseudo-terminal to see its progress bar.
command -v script >/dev/null || apt_install bsdutils
# The MCP interoperability and OAuth tests, and the Teal-plugin-over-MCP example
# (examples/teal-plugin-mcp): a FastMCP server from PyPI `mcp` 1.x (python3), and
# npm `oauth2-mock-server` as the OAuth 2 authorization server (node >= 20.19). About 10 s.
python3 -c 'import mcp.server.fastmcp' 2>/dev/null || python3 -m pip install --quiet 'mcp==1.30.0'
command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
node_dir="${TEAL_NODE_DIR:-${HOME:-/root}/.cache/teal-serverless/node}"
[ -f "$node_dir/node_modules/oauth2-mock-server/dist/index.mjs" ] \
  || npm install --silent --no-audit --no-fund --prefix "$node_dir" oauth2-mock-server@8.2.3 >/dev/null
export OAUTH2_MOCK_SERVER="$node_dir/node_modules/oauth2-mock-server/dist/index.mjs"
# cargo-lambda (brings zig): the local-invoke tests run functions under `cargo lambda watch`.
command -v cargo-lambda >/dev/null || python3 -m pip install --quiet cargo-lambda
# cfn-lint, and the SAM CLI in a venv of its own (it pins its own boto3/cfn-lint).
command -v cfn-lint >/dev/null || python3 -m pip install --quiet cfn-lint
sam_venv="${TEAL_SAM_VENV:-${HOME:-/root}/.cache/teal-serverless/sam-venv}"
if [ -z "${SAM_BIN:-}" ]; then
  if command -v sam >/dev/null; then
    SAM_BIN=$(command -v sam)
  else
    [ -x "$sam_venv/bin/sam" ] || { python3 -m venv "$sam_venv" && "$sam_venv/bin/pip" install --quiet aws-sam-cli; }
    SAM_BIN="$sam_venv/bin/sam"
  fi
fi
export SAM_BIN SAM_CLI_TELEMETRY=0
# checkov, in a venv of its own too (it pins its own cfn-lint and boto3).
checkov_venv="${TEAL_CHECKOV_VENV:-${HOME:-/root}/.cache/teal-serverless/checkov-venv}"
if [ -z "${CHECKOV_BIN:-}" ]; then
  if command -v checkov >/dev/null; then
    CHECKOV_BIN=$(command -v checkov)
  else
    [ -x "$checkov_venv/bin/checkov" ] || { python3 -m venv "$checkov_venv" && "$checkov_venv/bin/pip" install --quiet checkov; }
    CHECKOV_BIN="$checkov_venv/bin/checkov"
  fi
fi
export CHECKOV_BIN

log "infra lint (cfn-lint, sam validate --lint, checkov)"
scripts/lint-infra.sh

log "cargo fmt --check"
cargo fmt --all --check

log "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "cargo nextest run --workspace"
cargo nextest run --workspace --locked --no-fail-fast "$@"
