"""The only code that sends writes to the API server. Used by the guarded writer, nothing else.

Dry-run swaps nothing but a flag: every write goes to the server with ``dryRun=All``, so the
server validates, authorises and admits it exactly as for real, then does not persist it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s

from aiops.kube.errors import KubeApiError, classify, is_not_found
from aiops.model import Mutation, Resource, Verb


class KubeWriter:
    def __init__(self, api: k8s.ApiClient, *, timeout: tuple[float, float], dry_run: bool) -> None:
        self.dry_run = dry_run
        self._timeout = timeout
        self._core = k8s.CoreV1Api(api)
        self._apps = k8s.AppsV1Api(api)
        self._autoscaling = k8s.AutoscalingV2Api(api)
        self._custom = k8s.CustomObjectsApi(api)
        self._routes: dict[tuple[Verb, Resource], Callable[[Mutation, dict[str, Any]], Any]] = {
            (Verb.DELETE, Resource.PODS): self._delete_pod,
            (Verb.EVICT, Resource.PODS): self._evict_pod,
            (Verb.PATCH, Resource.NODES): lambda m, kw: self._core.patch_node(m.name, dict(m.body or {}), **kw),
            (Verb.PATCH, Resource.DEPLOYMENTS): lambda m, kw: self._apps.patch_namespaced_deployment(
                m.name, m.namespace, dict(m.body or {}), **kw
            ),
            (Verb.PATCH, Resource.STATEFULSETS): lambda m, kw: self._apps.patch_namespaced_stateful_set(
                m.name, m.namespace, dict(m.body or {}), **kw
            ),
            (Verb.PATCH, Resource.HORIZONTALPODAUTOSCALERS): lambda m, kw: (
                self._autoscaling.patch_namespaced_horizontal_pod_autoscaler(
                    m.name, m.namespace, dict(m.body or {}), **kw
                )
            ),
            # The body is the Event's JSON (camelCase keys); the client takes the pydantic model.
            (Verb.CREATE, Resource.EVENTS): lambda m, kw: self._core.create_namespaced_event(
                m.namespace, k8s.CoreV1Event.model_validate(dict(m.body or {})), **kw
            ),
            # Argo CD Applications (rollback_model). Custom resources take no strategic merge.
            (Verb.PATCH, Resource.APPLICATIONS): lambda m, kw: self._custom.patch_namespaced_custom_object(
                "argoproj.io",
                "v1alpha1",
                m.namespace,
                "applications",
                m.name,
                dict(m.body or {}),
                _content_type="application/merge-patch+json",
                **kw,
            ),
        }

    def supports(self, mutation: Mutation) -> bool:
        return (mutation.verb, mutation.resource) in self._routes

    def apply(self, mutation: Mutation) -> None:
        """Send one mutation. Raises :class:`KubeApiError` (temporary or permanent)."""
        route = self._routes.get((mutation.verb, mutation.resource))
        if route is None:
            raise KubeApiError(
                mutation.describe(), None, "Unsupported", "no writer for this verb/resource", temporary=False
            )
        kwargs: dict[str, Any] = {"_request_timeout": self._timeout, "_preload_content": False}
        if self.dry_run:
            kwargs["dry_run"] = "All"
        try:
            response = route(mutation, kwargs)
            response.read()  # raw urllib3 response: drain it so the connection returns to the pool
        except Exception as exc:
            err = classify(exc, mutation.describe())
            # Deleting or evicting a pod that is already gone reached the goal.
            if is_not_found(err) and mutation.resource == "pods" and mutation.verb in ("delete", "evict"):
                return
            raise err from None

    def _delete_pod(self, m: Mutation, kw: dict[str, Any]) -> Any:
        grace = (m.body or {}).get("gracePeriodSeconds")
        return self._core.delete_namespaced_pod(m.name, m.namespace, grace_period_seconds=grace, **kw)

    def _evict_pod(self, m: Mutation, kw: dict[str, Any]) -> Any:
        grace = (m.body or {}).get("gracePeriodSeconds")
        body = k8s.V1Eviction(
            api_version="policy/v1",
            kind="Eviction",
            metadata=k8s.V1ObjectMeta(name=m.name, namespace=m.namespace),
            delete_options=k8s.V1DeleteOptions(grace_period_seconds=grace) if grace is not None else None,
        )
        return self._core.create_namespaced_pod_eviction(m.name, m.namespace, body, **kw)
