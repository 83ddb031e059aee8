"""The Argo CD Application and the GitLab CI template point at things that exist."""

from __future__ import annotations

import re

import yaml

from tests.deploy.manifests import REPO

APPLICATION = REPO / "deploy" / "argocd" / "application.yaml"
GITLAB_CI = REPO / "deploy" / "gitlab" / "aiops.gitlab-ci.yml"


def test_argocd_application_deploys_the_chart() -> None:
    app = yaml.safe_load(APPLICATION.read_text())
    assert (app["apiVersion"], app["kind"]) == ("argoproj.io/v1alpha1", "Application")
    source = app["spec"]["source"]
    chart = REPO / source["path"]
    assert (chart / "Chart.yaml").is_file()
    for values in source["helm"]["valueFiles"]:
        assert (chart / values).is_file(), values
    assert app["spec"]["destination"]["namespace"] == "aiops"
    assert "CreateNamespace=true" in app["spec"]["syncPolicy"]["syncOptions"]
    ignored = app["spec"]["ignoreDifferences"][0]
    assert ignored["kind"] == "ConfigMap" and ignored["name"].endswith("-control"), "humans own the kill switch"


def test_gitlab_ci_builds_and_pushes_the_image() -> None:
    ci = yaml.safe_load(GITLAB_CI.read_text())
    jobs = {name: job for name, job in ci.items() if isinstance(job, dict) and "script" in job}
    for name, job in jobs.items():
        for key in ("before_script", "script"):
            # A ": " in an unquoted command turns it into a mapping, which GitLab rejects.
            assert all(isinstance(line, str) for line in job.get(key, [])), f"{name}.{key} has a non-string line"
    assert {"test", "build-image"} <= jobs.keys()
    for job in jobs.values():
        assert job["stage"] in ci["stages"]
    build = " ".join(jobs["build-image"]["script"])
    dockerfile = re.search(r"--file (\S+)", build)
    assert dockerfile and (REPO / dockerfile.group(1)).is_file()
    assert "docker push $IMAGE:$CI_COMMIT_SHORT_SHA" in build
    assert "$CI_REGISTRY_PASSWORD" in " ".join(jobs["build-image"]["before_script"])
    bump = " ".join(jobs["bump-image-tag"]["script"])
    assert str(APPLICATION.relative_to(REPO)) in bump
    for path in re.findall(
        r"\b(?:deploy|alert-rules)/[\w./-]+", " ".join(" ".join(j["script"]) for j in jobs.values())
    ):
        assert (REPO / path.rstrip("*")).exists() or "*" in path, path
