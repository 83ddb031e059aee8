"""The policy section: owner kinds are Kubernetes kinds, spelled as Kubernetes spells them."""

from __future__ import annotations

import pytest

from aiops.config import ConfigError, parse_config


@pytest.mark.parametrize(
    ("entry", "says"),
    [("job", "did you mean 'Job'?"), ("statefulset", "did you mean 'StatefulSet'?"),
     ("<None>", "did you mean '<none>'?"), ("", "did you mean")],
)
def test_an_owner_kind_that_can_match_nothing_is_named(entry: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"policy": {"never_disrupt_owners": [entry, "<none>"]}})
    reason = dict(caught.value.problems)["policy.never_disrupt_owners[0]"]
    assert says in reason and "case-sensitive" in reason


def test_owner_kinds_as_kubernetes_spells_them_are_accepted() -> None:
    owners = ["Job", "<none>", "LeaderWorkerSet", "RayCluster"]
    cfg = parse_config({"policy": {"never_disrupt_owners": owners}})
    assert cfg.policy.never_disrupt_owners == owners
