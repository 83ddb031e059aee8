"""Render the Helm chart into this kustomize base: ``python deploy/kustomize/base/render.py HELM``.

Writes ``aiops.yaml`` (every object of ``helm template`` with the chart's defaults, except the config
ConfigMap) and ``config.yaml`` (the daemon's config from that ConfigMap). kustomization.yaml turns
config.yaml back into the ConfigMap with a configMapGenerator, so overlays can replace it and a
changed config gets a new name that rolls the pods. tests/deploy/ re-renders and compares.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
CHART = HERE.parents[1] / "helm" / "aiops"
# Plain manifests: namespace aiops, the Secret aiops-secrets, no `helm test` pod.
HELM_ARGS = (
    "template",
    "aiops",
    str(CHART),
    "--namespace",
    "aiops",
    "--skip-tests",
    "--set",
    "secrets.existingSecret=aiops-secrets",
)
CONFIG_MAP = "aiops"


def split(rendered: str) -> tuple[str, str]:
    """(manifests without the config ConfigMap, config.yaml text)."""
    kept, config = [], None
    for document in rendered.split("\n---\n"):
        body = yaml.safe_load(document)
        if body and body["kind"] == "ConfigMap" and body["metadata"]["name"] == CONFIG_MAP:
            config = body["data"]["config.yaml"]
            continue
        kept.append(document)
    if config is None:
        raise SystemExit(f"the chart rendered no ConfigMap named {CONFIG_MAP!r}")
    return "\n---\n".join(kept).rstrip("\n") + "\n", config


def render(helm: str) -> tuple[str, str]:
    result = subprocess.run([helm, *HELM_ARGS], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"helm template failed:\n{result.stderr}")
    return split(result.stdout)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python deploy/kustomize/base/render.py HELM_BINARY", file=sys.stderr)
        return 2
    manifests, config = render(argv[1])
    (HERE / "aiops.yaml").write_text(manifests, encoding="utf-8")
    (HERE / "config.yaml").write_text(config, encoding="utf-8")
    print(f"wrote {HERE / 'aiops.yaml'} and {HERE / 'config.yaml'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
