"""docs/deploy.md names files, alerts and secret variables that exist."""

from __future__ import annotations

import re
import shlex
import subprocess

import yaml

from tests.deploy.manifests import CHART, REPO

GUIDE = (REPO / "docs" / "deploy.md").read_text()


def test_every_repository_path_in_the_guide_exists() -> None:
    paths = set(re.findall(r"`((?:deploy|alert-rules|dashboards|docs)/[\w./-]*)`", GUIDE))
    assert len(paths) >= 8
    missing = [p for p in sorted(paths) if not (REPO / p.rstrip("/")).exists() and "*" not in p]
    assert missing == []


def test_every_alert_is_documented() -> None:
    alerts = {
        rule["alert"]
        for path in (REPO / "alert-rules").glob("*.rules.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    assert {a for a in alerts if f"`{a}`" not in GUIDE} == set()


def test_secret_table_matches_the_chart_values() -> None:
    env = yaml.safe_load((CHART / "values.yaml").read_text())["secrets"]["env"]
    rows = dict(re.findall(r"^\| `([\w-]+)` \| `(AIOPS_\w+)` \|", GUIDE, flags=re.MULTILINE))
    assert {key: name for name, key in env.items()} == rows


def test_every_dashboard_is_documented() -> None:
    for path in (REPO / "dashboards").glob("*.json"):
        assert f"`{path.name}`" in GUIDE


def _helm_commands(text: str) -> list[list[str]]:
    """`helm install|upgrade` commands of the guide's shell blocks, continuation lines joined."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:2] in (["helm", "install"], ["helm", "upgrade"]):
                commands.append(words)
    return commands


def test_documented_helm_commands_render(helm: str) -> None:
    """Every --set in the guide and the chart README names a real value of an acceptable type."""
    commands = _helm_commands(GUIDE) + _helm_commands((CHART / "README.md").read_text())
    assert len(commands) >= 4
    for words in commands:
        args = [helm, "template", *[w for w in words[2:] if w != "--reuse-values"]]
        result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, f"{' '.join(words)}\n{result.stderr}"
