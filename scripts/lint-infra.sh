#!/usr/bin/env bash
# Lints the deployment definition, offline: promtool (infra/prometheus), cfn-lint, then
# `sam validate --lint` for the template and for each samconfig.toml environment, then checkov
# (every finding fixed, or skipped in the template's Metadata with a one-line reason: a new
# finding fails).
#
#   scripts/lint-infra.sh
#
# Needs promtool (apt-get install prometheus), cfn-lint (pip install cfn-lint) and the SAM CLI (in
# a venv: python3 -m venv V && V/bin/pip install aws-sam-cli); SAM_BIN points at `sam` when it is
# not on PATH; checkov (pip install checkov, in a venv too), CHECKOV_BIN when it is not on PATH.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
sam=${SAM_BIN:-sam}
checkov=${CHECKOV_BIN:-checkov}
export SAM_CLI_TELEMETRY=0

command -v cfn-lint >/dev/null || { echo "cfn-lint is not installed (pip install cfn-lint)" >&2; exit 3; }
command -v "$sam" >/dev/null || { echo "SAM CLI not found (set SAM_BIN)" >&2; exit 3; }
command -v "$checkov" >/dev/null || { echo "checkov not found (pip install checkov, or set CHECKOV_BIN)" >&2; exit 3; }
command -v promtool >/dev/null || { echo "promtool is not installed (apt-get install prometheus)" >&2; exit 3; }

# The self-hosted monitoring: the scrape config, the alert rules, and their unit tests.
(cd infra/prometheus && promtool check config prometheus.yml && promtool check rules alerts.yml \
  && promtool test rules alerts.test.yml)

echo "cfn-lint $(cfn-lint --version | awk '{print $2}'): infra/template.yaml"
cfn-lint infra/template.yaml
"$sam" validate --lint --region us-east-1 --template-file infra/template.yaml
for env in dev prod; do
  "$sam" validate --config-env "$env" --region us-east-1 --lint
done
echo "checkov $("$checkov" --version): infra/template.yaml"
"$checkov" -f infra/template.yaml --framework cloudformation --compact --quiet
echo "infra lint: ok"
