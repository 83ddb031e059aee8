"""The three PATCH flavours of the test API server, on the cases the daemon and kubectl send."""

from __future__ import annotations

import pytest

from aiops.testing.kubeapi_patch import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    PatchError,
    apply_patch,
)
from aiops.testing.kubeapi_selectors import (
    SelectorError,
    parse_field_selector,
    parse_label_selector,
    selector_matches,
    selector_to_string,
)

POD_TEMPLATE = {
    "metadata": {"labels": {"app": "llm"}, "finalizers": ["a"]},
    "spec": {
        "containers": [
            {"name": "main", "image": "llm:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "side", "image": "proxy:1"},
        ],
        "tolerations": [{"key": "gpu"}],
    },
}


def test_strategic_merge_merges_lists_by_their_merge_key() -> None:
    patch = {
        "metadata": {"finalizers": ["b"]},
        "spec": {
            "$setElementOrder/containers": [{"name": "main"}, {"name": "side"}],
            "containers": [
                {
                    "name": "main",
                    "image": "llm:2",
                    "env": [{"name": "B", "$patch": "delete"}, {"name": "C", "value": "3"}],
                }
            ],
            "tolerations": [{"key": "tpu"}],  # no merge key: replaced
        },
    }
    out = apply_patch(POD_TEMPLATE, STRATEGIC_MERGE_PATCH, patch)
    main, side = out["spec"]["containers"]
    assert main == {"name": "main", "image": "llm:2", "env": [{"name": "A", "value": "1"}, {"name": "C", "value": "3"}]}
    assert side == {"name": "side", "image": "proxy:1"}
    assert out["spec"]["tolerations"] == [{"key": "tpu"}]
    assert out["metadata"]["finalizers"] == ["a", "b"]
    assert POD_TEMPLATE["spec"]["containers"][0]["image"] == "llm:1"  # the input is not modified


def test_strategic_merge_directives_and_null() -> None:
    replaced = apply_patch(
        POD_TEMPLATE,
        STRATEGIC_MERGE_PATCH,
        {"spec": {"$patch": "replace", "containers": [{"name": "x", "image": "x:1"}]}},
    )
    assert replaced["spec"] == {"containers": [{"name": "x", "image": "x:1"}]}
    emptied = apply_patch(POD_TEMPLATE, STRATEGIC_MERGE_PATCH, {"metadata": {"labels": {"$patch": "delete"}}})
    assert emptied["metadata"]["labels"] == {}
    nulled = apply_patch(POD_TEMPLATE, STRATEGIC_MERGE_PATCH, {"metadata": {"labels": None}})
    assert "labels" not in nulled["metadata"]


def test_merge_patch_replaces_lists_and_deletes_nulls() -> None:
    out = apply_patch(POD_TEMPLATE, MERGE_PATCH, {"spec": {"containers": [{"name": "only"}], "tolerations": None}})
    assert out["spec"] == {"containers": [{"name": "only"}]}


def test_json_patch_and_its_errors() -> None:
    out = apply_patch(
        POD_TEMPLATE, JSON_PATCH, [{"op": "replace", "path": "/spec/containers/0/image", "value": "llm:3"}]
    )
    assert out["spec"]["containers"][0]["image"] == "llm:3"
    with pytest.raises(PatchError):
        apply_patch(POD_TEMPLATE, JSON_PATCH, [{"op": "test", "path": "/spec/containers/0/image", "value": "nope"}])
    with pytest.raises(PatchError):
        apply_patch(POD_TEMPLATE, JSON_PATCH, {"op": "replace"})
    with pytest.raises(PatchError):
        apply_patch(POD_TEMPLATE, "application/xml", {})


def test_label_selector_syntax_and_objects() -> None:
    labels = {"app": "llm", "tier": "gpu"}
    assert parse_label_selector("app=llm,tier in (gpu, cpu),!canary")(labels)
    assert not parse_label_selector("app==llm,tier notin (gpu)")(labels)
    assert parse_label_selector("")({})
    with pytest.raises(SelectorError):
        parse_label_selector("=x")
    selector = {
        "matchLabels": {"app": "llm"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["gpu"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    }
    assert selector_matches(selector, labels)
    assert not selector_matches(selector, {"app": "llm", "tier": "gpu", "canary": "1"})
    assert selector_matches({}, {}) and not selector_matches(None, labels)
    assert selector_to_string(selector) == "app=llm,tier in (gpu),!canary"


def test_field_selector() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "ml"},
        "spec": {"nodeName": "n1", "hostNetwork": True},
        "status": {"phase": "Running"},
    }
    assert parse_field_selector("spec.nodeName=n1,status.phase!=Succeeded")(pod)
    assert parse_field_selector("spec.hostNetwork=true")(pod)
    assert not parse_field_selector("metadata.namespace==default")(pod)
    with pytest.raises(SelectorError):
        parse_field_selector("spec.nodeName")
