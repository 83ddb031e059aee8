#!/usr/bin/env bash
# Regenerate everything in deploy/ and dashboards/ that is derived from another file, from the
# repository root: bash deploy/refresh-generated.sh. tests/deploy and tests/dashboards fail until
# the derived files are refreshed and committed.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 dashboards/generate.py

helm="$(python3 -c 'from tests.deploy.helm_binary import find_helm; print(find_helm() or "")')"
if [ -z "$helm" ]; then
  echo "helm not found: run 'python3 -m tests.deploy.helm_binary' first" >&2
  exit 1
fi
python3 deploy/kustomize/base/render.py "$helm"
echo "refreshed: dashboards/*.json, deploy/kustomize/base/{aiops,config}.yaml"
