"""A small Kubernetes API server for tests, faithful enough for the real ``kubectl``.

It speaks the REST paths, JSON bodies, ``metav1.Status`` errors and content types of kube-apiserver
for the resources aiops reads and writes, enforces RBAC from the shipped ClusterRole, and runs the
bits of the controllers the tests rely on (ReplicaSet revisions, PDB accounting). Use it with the
official ``kubernetes`` client or with ``kubectl --kubeconfig``::

    with KubeApiServer(objects=[make_node("n1"), make_pod("web-1", node="n1")]) as api:
        core = kubernetes.client.CoreV1Api(api.api_client())          # service-account token
        api.write_kubeconfig(tmp_path / "kubeconfig")                  # admin token, for kubectl
        api.fail_next(1, method="POST", path="/eviction$", status=500)
        ...
        assert not api.requests_matching(verb="create", subresource="eviction")

It serves HTTPS on 127.0.0.1 (kubectl sends bearer tokens only over TLS) with a throwaway
certificate that the kubeconfig and :meth:`KubeApiServer.configuration` trust explicitly.

Verified with kubectl 1.37 (tests/kube/test_kubectl.py): ``get pods -A`` (server-side Table,
``-o wide``, ``custom-columns``, ``--field-selector``, ``--chunk-size``, ``-w``), ``get nodes|pdb|
hpa|lease|events|rs|deploy|applications``, ``events --for``, ``cordon``/``uncordon``, ``delete pod
--grace-period``, ``drain --ignore-daemonsets [--dry-run=server]`` (evicting within the budget,
blocked by a PodDisruptionBudget until ``--timeout``, waiting for Terminating pods), ``auth can-i
[--as] [--subresource] [--list]``, ``set image``, ``scale``, ``patch --type=merge``, ``label``,
``annotate``, ``rollout history|undo [--to-revision]|status|restart|pause|resume``, ``create
configmap|namespace``, ``apply -f`` (built-in kinds and Argo CD Applications).

Known gaps: pods go at once on delete/evict unless ``graceful_deletion=True`` (then they stay
Terminating until :meth:`KubeApiServer.finish_terminations`); no finalizers, admission, defaulting
or schema validation (the OpenAPI v3 documents only tell kubectl that PATCH takes
``fieldValidation``; unknown fields are then accepted, not refused); namespaces need not exist
unless ``require_namespaces=True``; no aggregated discovery (kubectl falls back to the legacy
documents); server-side apply is refused (415), and protobuf bodies too except the access reviews,
ConfigMaps and Namespaces kubectl sends that way; PDB ``expectedPods`` counts the selected pods'
controllers only when the server holds them; no controllers but the Deployment (ReplicaSet
revisions, history limit, instant or held rollouts), StatefulSet status, disruption budget and
garbage collector ones.
"""

from __future__ import annotations

import base64
import builtins
import copy
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from aiops.testing import kubeapi_protobuf
from aiops.testing import kubeapi_resources as resources
from aiops.testing.kubeapi_controllers import (
    DeploymentController,
    delete_pod,
    evict,
    finish_terminations,
    statefulset_status,
    with_pdb_status,
)
from aiops.testing.kubeapi_faults import Fault, FaultBook, RequestRecord
from aiops.testing.kubeapi_patch import APPLY_PATCH, PATCH_TYPES, STRATEGIC_MERGE_PATCH, PatchError, apply_patch
from aiops.testing.kubeapi_rbac import (
    Identity,
    PolicyRule,
    forbidden_message,
    load_cluster_role,
    load_roles,
    rules_from,
    rules_review,
)
from aiops.testing.kubeapi_resources import ResourceType
from aiops.testing.kubeapi_selectors import SelectorError, parse_field_selector, parse_label_selector
from aiops.testing.kubeapi_store import ApiError, Obj, ObjectStore, keep_status, status_body
from aiops.testing.kubeapi_tables import to_table, wants_table
from aiops.testing.tls import loopback_certificate

__all__ = [
    "ADMIN_TOKEN",
    "DEFAULT_CLUSTER_ROLE",
    "SA_TOKEN",
    "SA_USER",
    "ApiError",
    "Fault",
    "KubeApiServer",
    "RequestRecord",
]

ADMIN_TOKEN = "aiops-test-admin-token"
SA_TOKEN = "aiops-test-serviceaccount-token"
SA_USER = "system:serviceaccount:aiops:aiops"
# The ClusterRole shipped in this repository (a source checkout: deploy/ is not in the wheel).
DEFAULT_CLUSTER_ROLE = Path(__file__).resolve().parents[2] / "deploy" / "rbac" / "clusterrole.yaml"
# The namespaced part of the daemon's rights, beside the ClusterRole it complements.
ROLE_FILE = "role.yaml"
SERVER_VERSION = {
    "major": "1",
    "minor": "37",
    "gitVersion": "v1.37.0-aiops-test",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# How often the accept loop looks for a stop request: stop() waits up to this long, and tests
# start and stop a server each, hundreds of times a run.
POLL_SECONDS = 0.01


class KubeApiServer:
    """The API server, on 127.0.0.1 and a free port, serving from a background thread.

    ``rules`` are the service account's RBAC rules; when omitted they are read from
    ``cluster_role`` (default: the repository's ``deploy/rbac/clusterrole.yaml``);
    if that file does not exist either, the service-account token is refused everything (403), so
    a missing ClusterRole is noticed rather than silently allowed.
    """

    def __init__(
        self,
        objects: Iterable[Obj | str] = (),
        *,
        rules: Iterable[Mapping[str, Any] | PolicyRule] | None = None,
        cluster_role: str | Path | None = None,
        graceful_deletion: bool = False,
        require_namespaces: bool = False,
    ) -> None:
        # True: creating in a namespace that does not exist is 404, as on a real apiserver.
        # False (the default) spares tests from seeding every namespace they write to.
        self.require_namespaces = require_namespaces
        # False: pods go at once on delete/evict. True: a scheduled pod with a grace period stays
        # Terminating (deletionTimestamp set) until finish_terminations(), as with a real kubelet.
        self.graceful_deletion = graceful_deletion
        self.store = ObjectStore()
        self.faults = FaultBook()
        self.deployments = DeploymentController()
        self.store.on_write(resources.by_kind("Deployment"), self.deployments)
        self.store.on_write(resources.by_kind("StatefulSet"), statefulset_status)
        if rules is not None:
            sa_rules = rules_from(rules)
        else:
            path = Path(cluster_role) if cluster_role else DEFAULT_CLUSTER_ROLE
            sa_rules = load_cluster_role(path) if path.exists() else ()
            role = path.with_name(ROLE_FILE)
            if path.exists() and role.exists():
                sa_rules += load_roles(role)
        self.tokens: dict[str, Identity] = {
            ADMIN_TOKEN: Identity("kubernetes-admin", ("system:masters", "system:authenticated")),
            SA_TOKEN: Identity(
                SA_USER, ("system:serviceaccounts", "system:serviceaccounts:aiops", "system:authenticated"), sa_rules
            ),
        }
        self.certificate = loopback_certificate()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()  # set while the server shuts down: ends watches and hangs
        for ns in _DEFAULT_NAMESPACES:
            self.store.create(
                resources.by_kind("Namespace"),
                "",
                {"metadata": {"name": ns}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}},
            )
        self.seed(*objects)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> KubeApiServer:
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        # The TLS handshake happens on first read, in the request's thread, so one slow client
        # cannot stall the accept loop.
        server.socket = self.certificate.server_context().wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
        server.daemon_threads = True
        server.api = self
        self._server = server
        self.stopping.clear()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": POLL_SECONDS}, name="kubeapi", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self.stopping.set()  # releases hanging requests
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> KubeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the test API server is not running; use it as a context manager or call start()")
        port = self._server.server_address[1]
        return f"https://127.0.0.1:{port}"

    # --- clients -----------------------------------------------------------------------------

    def configuration(self, token: str = SA_TOKEN) -> Any:
        """A ``kubernetes.client.Configuration`` for this server (service-account token by default)."""
        from kubernetes import client

        cfg = client.Configuration(host=self.url)
        cfg.ssl_ca_cert = str(self.certificate.cert_file)
        cfg.api_key = {"BearerToken": token}
        cfg.api_key_prefix = {"BearerToken": "Bearer"}
        return cfg

    def api_client(self, token: str = SA_TOKEN) -> Any:
        from kubernetes import client

        return client.ApiClient(self.configuration(token))

    def write_kubeconfig(self, path: str | Path, token: str = ADMIN_TOKEN, namespace: str = "default") -> Path:
        """A kubeconfig for ``kubectl --kubeconfig`` (admin token by default)."""
        path = Path(path)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "aiops-test",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": base64.b64encode(self.certificate.pem).decode(),
                    },
                }
            ],
            "users": [{"name": "aiops-test", "user": {"token": token}}],
            "contexts": [
                {
                    "name": "aiops-test",
                    "context": {"cluster": "aiops-test", "user": "aiops-test", "namespace": namespace},
                }
            ],
            "current-context": "aiops-test",
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        path.chmod(0o600)
        return path

    # --- state for test setup and assertions (bypasses auth, faults and the request log) ------

    def seed(self, *objects: Obj | str) -> list[Obj]:
        """Create objects given as dicts or YAML documents (several per string allowed)."""
        created = []
        for item in objects:
            docs = [d for d in yaml.safe_load_all(item) if d] if isinstance(item, str) else [item]
            for doc in docs:
                rt = _type_of(doc)
                created.append(
                    self.store.create(
                        rt, doc.get("metadata", {}).get("namespace", "default") if rt.namespaced else "", doc
                    )
                )
        return created

    def get(self, kind: str, name: str, namespace: str = "default", group: str | None = None) -> Obj:
        rt = resources.by_kind(kind, group)
        obj = self.store.get(rt, namespace if rt.namespaced else "", name)
        return with_pdb_status(self.store, obj) if rt.kind == "PodDisruptionBudget" else obj

    def exists(self, kind: str, name: str, namespace: str = "default", group: str | None = None) -> bool:
        try:
            self.get(kind, name, namespace, group)
        except ApiError:
            return False
        return True

    def list(self, kind: str, namespace: str = "", group: str | None = None) -> list[Obj]:
        return self.store.list(resources.by_kind(kind, group), namespace)[0]

    def put(self, obj: Obj) -> Obj:
        """Replace an object as a controller would (no resourceVersion check), e.g. to mark a pod ready."""
        rt = _type_of(obj)
        meta = obj["metadata"]
        return self.store.replace_unchecked(
            rt, meta.get("namespace", "default") if rt.namespaced else "", meta["name"], copy.deepcopy(obj)
        )

    def delete(self, kind: str, name: str, namespace: str = "default", group: str | None = None) -> None:
        rt = resources.by_kind(kind, group)
        self.store.delete(rt, namespace if rt.namespaced else "", name)

    def finish_terminations(self) -> builtins.list[str]:
        """Remove the Terminating pods (``graceful_deletion``), as their kubelets would; ``ns/name`` of each."""
        return finish_terminations(self.store)

    def hold_rollouts(self) -> None:
        """From now on new ReplicaSets stay unready: a Deployment rollout does not complete."""
        self.deployments.auto_rollout = False

    def finish_rollouts(self) -> None:
        """Complete every held rollout, as the ReplicaSet controller and kubelets would."""
        self.deployments.auto_rollout = True
        rt = resources.by_kind("Deployment")
        for deploy in self.store.list(rt)[0]:
            self.deployments(self.store, rt, deploy, deploy)

    # --- fault injection and the request log --------------------------------------------------

    def fail_next(
        self,
        count: int = 1,
        *,
        method: str | None = None,
        path: str = "",
        status: int = 500,
        message: str = "injected fault",
        retry_after: int | None = None,
    ) -> Fault:
        """The next ``count`` requests matching ``method`` and the ``path`` regex answer ``status``."""
        return self.faults.add(Fault(count, method, path, status=status, message=message, retry_after=retry_after))

    def hang_next(self, count: int = 1, *, method: str | None = None, path: str = "", seconds: float = 30.0) -> Fault:
        """The next ``count`` matching requests get no answer for ``seconds``, then a dropped connection."""
        return self.faults.add(Fault(count, method, path, hang_seconds=seconds))

    def slow_down(self, seconds: float, *, method: str | None = None, path: str = "") -> None:
        """Every matching request waits ``seconds`` before it is served (until ``clear_faults``);
        requests on different connections wait side by side, as against a distant API server."""
        self.faults.add_latency(seconds, method, path)

    @property
    def requests(self) -> builtins.list[RequestRecord]:
        return self.faults.log()

    def requests_matching(
        self,
        *,
        method: str | None = None,
        verb: str | None = None,
        resource: str | None = None,
        subresource: str | None = None,
        name: str | None = None,
        namespace: str | None = None,
        writes_only: bool = False,
    ) -> builtins.list[RequestRecord]:
        """Logged requests with the given attributes (``None`` matches anything)."""
        wanted = {
            "method": method,
            "verb": verb,
            "resource": resource,
            "subresource": subresource,
            "name": name,
            "namespace": namespace,
        }
        out = []
        for rec in self.faults.log():
            if any(v is not None and getattr(rec, k) != v for k, v in wanted.items()):
                continue
            if writes_only and rec.method in {"GET", "HEAD"}:
                continue
            out.append(rec)
        return out

    def clear_requests(self) -> None:
        self.faults.clear_log()


def _type_of(obj: Mapping[str, Any]) -> ResourceType:
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    if not kind:
        raise ValueError(f"object {obj.get('metadata', {}).get('name', '?')!r} has no kind; set apiVersion and kind")
    return resources.by_kind(kind, group)


# --- HTTP --------------------------------------------------------------------------------------


class _Request:
    """A parsed resource request: which type, which object, which verb."""

    def __init__(self, method: str, path: str, query: dict[str, list[str]]) -> None:
        self.method, self.path, self.query = method, path, query
        self.rt: ResourceType | None = None
        self.namespace = self.name = self.subresource = ""
        self.verb = ""

    def param(self, key: str, default: str = "") -> str:
        return self.query.get(key, [default])[0]

    @property
    def dry_run(self) -> bool:
        return "All" in self.query.get("dryRun", ())


def _parse_resource_path(method: str, path: str, query: dict[str, list[str]]) -> _Request | None:
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api" and parts[1] == "v1":
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    req = _Request(method, path, query)
    if rest[0] == "namespaces" and len(rest) >= 3:
        req.namespace, rest = rest[1], rest[2:]
    rt = resources.find(group, version, rest[0])
    if rt is None or len(rest) > 3 or (req.namespace and not rt.namespaced):
        return None
    req.rt = rt
    req.name = rest[1] if len(rest) > 1 else ""
    req.subresource = rest[2] if len(rest) > 2 else ""
    if req.subresource and req.subresource not in rt.subresources:
        return None
    collection = not req.name
    req.verb = {
        "GET": "watch" if query.get("watch", [""])[0] in {"true", "1"} else ("list" if collection else "get"),
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "deletecollection" if collection else "delete",
    }.get(method, "")
    return req


class _Server(ThreadingHTTPServer):
    """The HTTP server of one fake API server: each request's handler reaches the fake through it."""

    api: KubeApiServer
    # socketserver's default backlog is 5: several replicas' clients (three sharded replicas, each
    # with a pool of connections) opening at once would see refused or reset connections on a busy
    # machine, which a real apiserver (backlog in the thousands) never shows them.
    request_queue_size = 128


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "aiops-kubeapi"
    # Headers and body go out in separate writes: with Nagle on, each small response waits for
    # the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silent: the request log is the record."""

    @property
    def api(self) -> KubeApiServer:
        return self.server.api

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    # --- plumbing ---

    def _send(self, code: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-cache, private")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if "protobuf" in ctype:
            try:
                return kubeapi_protobuf.decode(raw)
            except kubeapi_protobuf.ProtobufError as exc:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types include: application/json, application/yaml ({exc})",
                ) from None
        if "cbor" in ctype:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml",
            )
        try:
            return yaml.safe_load(raw) if ctype == "application/yaml" else json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise ApiError.bad_request(f"the body of the request could not be decoded: {exc}") from None

    def _identity(self) -> Identity:
        auth = self.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.startswith("Bearer ") else ""
        identity = self.api.tokens.get(token)
        if identity is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        impersonate = self.headers.get("Impersonate-User")
        if impersonate:  # kubectl --as=USER; only the admin may impersonate, as with RBAC's "impersonate" verb
            if identity.rules is not None:
                raise ApiError(
                    403,
                    "Forbidden",
                    f'users "{impersonate}" is forbidden: User "{identity.username}" cannot impersonate resource "users" in API group "" at the cluster scope',
                )
            known = {i.username: i for i in self.api.tokens.values()}
            identity = known.get(impersonate) or Identity(impersonate, ("system:authenticated",), ())
        return identity

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        path, query = split.path.rstrip("/") or "/", parse_qs(split.query)
        method = self.command
        req = _parse_resource_path(method, path, query)
        rt = req.rt if req else None
        logged = False

        def record(code: int, user: str = "", body: Any = None) -> None:
            # Logged before the answer is written, so a client that has its answer finds it logged.
            nonlocal logged
            if logged:
                return
            logged = True
            self.api.faults.record(
                RequestRecord(
                    method=method,
                    path=path,
                    query=query,
                    user=user,
                    verb=req.verb if req else method.lower(),
                    group=rt.group if rt else "",
                    resource=rt.plural if rt else "",
                    subresource=req.subresource if req else "",
                    namespace=req.namespace if req else "",
                    name=req.name if req else "",
                    status=code,
                    body=body,
                    content_type=self.headers.get("Content-Type", ""),
                )
            )

        user, body = "", None
        try:
            delay = self.api.faults.latency(method, path)
            if delay > 0:
                self.api.stopping.wait(delay)
            fault = self.api.faults.take(method, path)
            if fault is not None and fault.hang_seconds > 0:
                record(0)
                self.api.stopping.wait(fault.hang_seconds)
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            body = self._read_body()
            identity = self._identity()
            user = identity.username
            if fault is not None:
                reason = {
                    429: "TooManyRequests",
                    500: "InternalError",
                    503: "ServiceUnavailable",
                    504: "Timeout",
                    409: "Conflict",
                }.get(fault.status, HTTPStatus(fault.status).phrase.replace(" ", ""))
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                raise ApiError(fault.status, reason, fault.message, headers=headers)
            if req is None:
                code, out = self._non_resource(method, path)
            else:
                self._authorize(identity, req)
                code, out = self._resource(req, body, identity)
            record(code, user, body)
            if isinstance(out, _Watch):
                self._watch(req, out.initial, out.resource_version, out.matches)  # type: ignore[arg-type]
            else:
                self._send(code, out)
        except ApiError as err:
            record(err.code, user, body)
            self._send(err.code, err.body(), err.headers)
        except (BrokenPipeError, ConnectionResetError):
            record(0, user, body)
        except Exception as exc:  # a bug in the fake must surface as a 500 the test can see
            record(500, user, body)
            self._send(500, status_body(500, "InternalError", f"test API server bug: {type(exc).__name__}: {exc}"))

    def _authorize(self, identity: Identity, req: _Request) -> None:
        rt = req.rt
        assert rt is not None
        if rt.group == "authorization.k8s.io":
            return  # system:basic-user lets every authenticated user review its own access
        if not identity.can(req.verb, rt.group, rt.plural, req.subresource, req.name, req.namespace):
            message = forbidden_message(
                identity.username, req.verb, rt.group, rt.plural, req.subresource, req.namespace, req.name, rt.qualified
            )
            details: dict[str, Any] = {"kind": rt.plural}
            if req.name:
                details["name"] = req.name
            if rt.group:
                details["group"] = rt.group
            raise ApiError(403, "Forbidden", message, details)

    # --- non-resource paths: discovery, version, health ---

    def _non_resource(self, method: str, path: str) -> tuple[int, Any]:
        if method != "GET":
            raise ApiError(
                405, "MethodNotAllowed", f"the server does not allow this method on the requested resource ({path})"
            )
        parts = [p for p in path.split("/") if p]
        found: Any = None
        if path == "/version":
            found = SERVER_VERSION
        elif path in {"/healthz", "/readyz", "/livez"}:
            found = "ok"
        elif parts == ["api"]:
            found = resources.core_versions()
        elif parts == ["api", "v1"]:
            found = resources.resource_list("v1")
        elif parts == ["apis"]:
            found = resources.group_list()
        elif len(parts) == 2 and parts[0] == "apis":
            found = resources.group(parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            found = resources.resource_list(f"{parts[1]}/{parts[2]}")
        elif parts == ["openapi", "v3"]:
            found = resources.openapi_root()
        elif parts[:2] == ["openapi", "v3"]:
            found = resources.openapi_group_version("/".join(parts[2:]))
        if found is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        return 200, found

    # --- resources ---

    def _resource(self, req: _Request, body: Any, identity: Identity) -> tuple[int, Any]:
        rt = req.rt
        assert rt is not None
        store = self.api.store
        if req.verb not in rt.verbs and not req.subresource:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if rt.group == "authorization.k8s.io":
            return 201, self._review(rt, body or {}, identity)
        if req.subresource == "eviction":
            if req.verb != "create":
                raise ApiError(
                    405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
                )
            return 201, evict(
                store, req.namespace, req.name, body or {}, dry_run=req.dry_run, graceful=self.api.graceful_deletion
            )
        if req.subresource == "scale":
            return self._scale(req, body)
        if req.verb in {"list", "watch"}:
            return self._list(req)
        if req.verb == "get":
            obj = store.get(rt, req.namespace, req.name)
            return 200, self._present(rt, obj, req)
        if req.verb == "create":
            if not isinstance(body, dict):
                raise ApiError.bad_request("the body of the request must be an object")
            if rt.kind == "Event" and rt.group == "events.k8s.io":
                _validate_event(rt, body)
            elif rt.kind == "Event":
                _validate_core_event(rt, req.namespace, body)
            if rt.namespaced and self.api.require_namespaces:
                store.get(resources.by_kind("Namespace"), "", req.namespace)  # 404 namespaces "x" not found
            if rt.kind == "Namespace":  # the namespace strategy's defaults
                body = {**body, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
            obj = store.create(rt, req.namespace, body, dry_run=req.dry_run)
            return 201, obj
        if req.verb == "update":
            if not isinstance(body, dict):
                raise ApiError.bad_request("the body of the request must be an object")
            return 200, store.update(
                rt, req.namespace, req.name, body, dry_run=req.dry_run, subresource=req.subresource
            )
        if req.verb == "patch":
            return 200, self._patch(req, body)
        if req.verb == "delete":
            options = body if isinstance(body, dict) else {}
            dry_run = req.dry_run or "All" in (options.get("dryRun") or ())
            orphan = (
                options.get("propagationPolicy") == "Orphan"
                or req.param("propagationPolicy") == "Orphan"
                or options.get("orphanDependents") is True
            )
            if rt.kind == "Pod":
                if req.param("gracePeriodSeconds"):
                    try:
                        options = {**options, "gracePeriodSeconds": int(req.param("gracePeriodSeconds"))}
                    except ValueError:
                        raise ApiError.bad_request("gracePeriodSeconds must be an integer") from None
                return 200, delete_pod(
                    store, req.namespace, req.name, options, dry_run=dry_run, graceful=self.api.graceful_deletion
                )
            gone = store.delete(
                rt, req.namespace, req.name, dry_run=dry_run, preconditions=options.get("preconditions"), orphan=orphan
            )
            # Only pods answer with the deleted object; other registries answer a Success Status.
            details = {"name": req.name, "kind": rt.plural, "uid": gone["metadata"]["uid"]}
            if rt.group:
                details["group"] = rt.group
            return 200, status_body(200, "", "", details)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _present(self, rt: ResourceType, obj: Obj, req: _Request) -> Any:
        if rt.kind == "PodDisruptionBudget":
            obj = with_pdb_status(self.api.store, obj)
        if wants_table(self.headers.get("Accept", "")):
            return to_table(rt, [obj], obj["metadata"]["resourceVersion"], req.param("includeObject", "Metadata"))
        return obj

    def _list(self, req: _Request) -> tuple[int, Any]:
        rt = req.rt
        assert rt is not None
        try:
            labels = parse_label_selector(req.param("labelSelector"))
            fields = parse_field_selector(req.param("fieldSelector"))
        except SelectorError as exc:
            raise ApiError.bad_request(str(exc)) from None

        def matches(o: Obj) -> bool:
            return labels(o["metadata"].get("labels") or {}) and fields(o)

        items, rv = self.api.store.list(rt, req.namespace, matches)
        if rt.kind == "PodDisruptionBudget":
            items = [with_pdb_status(self.api.store, o) for o in items]
        if req.verb == "watch":
            for key in ("timeoutSeconds", "resourceVersion"):
                if req.param(key) and not req.param(key).isdigit():
                    raise ApiError.bad_request(f"{key} must be a non-negative integer, got {req.param(key)!r}")
            return 200, _Watch(items, rv, matches)
        items, page_meta = _page(items, rv, req.param("limit"), req.param("continue"))
        if wants_table(self.headers.get("Accept", "")):
            table = to_table(rt, items, rv, req.param("includeObject", "Metadata"))
            table["metadata"].update(page_meta)
            return 200, table
        for item in items:  # list items carry no apiVersion/kind, as on a real apiserver
            item.pop("apiVersion", None)
            item.pop("kind", None)
        return 200, {
            "kind": f"{rt.kind}List",
            "apiVersion": rt.group_version,
            "metadata": {"resourceVersion": rv, **page_meta},
            "items": items,
        }

    def _watch(self, req: _Request, initial: list[Obj], list_rv: str, matches: Any) -> None:
        """A watch stream: optional initial ADDED events (and the WatchList bookmark), then changes.

        The stream ends at ``timeoutSeconds`` or when the server stops, as a server-side watch
        timeout would; clients then re-list or re-watch.
        """
        rt = req.rt
        assert rt is not None
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        as_table = wants_table(self.headers.get("Accept", ""))  # kubectl get -w: one-row Tables

        def emit(kind: str, obj: Obj) -> None:
            obj.setdefault("apiVersion", rt.group_version)
            obj.setdefault("kind", rt.kind)
            if as_table and kind != "BOOKMARK":
                obj = to_table(rt, [obj], obj["metadata"]["resourceVersion"], req.param("includeObject", "Metadata"))
            line = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            self.wfile.flush()

        since = req.param("resourceVersion")
        send_initial = req.param("sendInitialEvents") == "true" or since in {"", "0"}
        after = int(list_rv) if send_initial else int(since)
        if send_initial:
            for obj in initial:
                emit("ADDED", obj)
        if req.param("sendInitialEvents") == "true":
            emit(
                "BOOKMARK",
                {
                    "kind": rt.kind,
                    "apiVersion": rt.group_version,
                    "metadata": {"resourceVersion": list_rv, "annotations": {"k8s.io/initial-events-end": "true"}},
                },
            )
        deadline = time.monotonic() + float(req.param("timeoutSeconds", "1800") or 1800)
        try:
            while not self.api.stopping.is_set() and time.monotonic() < deadline:
                for kind, obj in self.api.store.changes(rt, req.namespace, after, timeout=0.2):
                    after = int(obj["metadata"]["resourceVersion"])
                    if matches(obj):
                        emit(kind, obj)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass  # the client went away: the normal end of most watches
        self.close_connection = True

    def _patch(self, req: _Request, body: Any) -> Obj:
        rt = req.rt
        assert rt is not None
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype == APPLY_PATCH:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "server-side apply is not supported by the aiops test API server; use a strategic-merge, merge or JSON patch",
            )
        if ctype not in PATCH_TYPES or (rt.custom and ctype == STRATEGIC_MERGE_PATCH):
            accepted = [t for t in PATCH_TYPES if not (rt.custom and t == STRATEGIC_MERGE_PATCH)]
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: {', '.join(accepted)}, {APPLY_PATCH}",
            )
        store = self.api.store
        with store.lock:
            current = store.get(rt, req.namespace, req.name)
            try:
                patched = apply_patch(current, ctype, body)
            except PatchError as exc:
                raise ApiError.invalid(rt, req.name, str(exc)) from None
            sent_rv = patched.get("metadata", {}).get("resourceVersion")
            if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
                raise ApiError.conflict(rt, req.name)
            if req.subresource == "status":
                status = patched.get("status")
                patched = copy.deepcopy(current)
                patched["status"] = status
            else:
                keep_status(rt, current, patched)
            return store.replace_unchecked(rt, req.namespace, req.name, patched, dry_run=req.dry_run)

    def _scale(self, req: _Request, body: Any) -> tuple[int, Any]:
        rt = req.rt
        assert rt is not None
        store = self.api.store
        obj = store.get(rt, req.namespace, req.name)
        if req.verb in {"update", "patch"}:
            if req.verb == "patch":
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                body = apply_patch(_scale_of(obj), ctype, body)
            replicas = int(((body or {}).get("spec") or {}).get("replicas", obj["spec"].get("replicas", 1)))
            obj["spec"]["replicas"] = replicas
            obj = store.replace_unchecked(rt, req.namespace, req.name, obj, dry_run=req.dry_run)
        return 200, _scale_of(obj)

    def _review(self, rt: ResourceType, body: Obj, identity: Identity) -> Obj:
        out = copy.deepcopy(body)
        out.setdefault("metadata", {})
        if rt.plural == "selfsubjectrulesreviews":
            namespace = str((body.get("spec") or {}).get("namespace") or "")
            out["status"] = {"resourceRules": list(rules_review(identity, namespace)), "nonResourceRules": [], "incomplete": False}
            return out
        attrs = (body.get("spec") or {}).get("resourceAttributes") or {}
        allowed = identity.can(
            attrs.get("verb", ""),
            attrs.get("group", ""),
            attrs.get("resource", ""),
            attrs.get("subresource", ""),
            attrs.get("name", ""),
            attrs.get("namespace", ""),
        )
        out["status"] = {"allowed": allowed} if allowed else {"allowed": False, "reason": "no RBAC policy matched"}
        if allowed:
            out["status"]["reason"] = (
                'RBAC: allowed by ClusterRoleBinding "aiops"'
                if identity.rules is not None
                else "RBAC: allowed by system:masters"
            )
        return out


@dataclass
class _Watch:
    """What a watch request streams: the objects as of ``resource_version``, then changes."""

    initial: list[Obj]
    resource_version: str
    matches: Any


def _page(items: list[Obj], rv: str, limit: str, token: str) -> tuple[list[Obj], dict[str, Any]]:
    """``limit``/``continue`` chunking. The token names the last object returned; the next page
    starts after it in (namespace, name) order, the order lists are served in."""
    if token:
        try:
            after = tuple(json.loads(base64.urlsafe_b64decode(token.encode())))
        except ValueError:
            raise ApiError.bad_request("continue key is not valid: not a token from this server") from None
        items = [i for i in items if (i["metadata"].get("namespace", ""), i["metadata"]["name"]) > after]
    try:
        size = int(limit or 0)
    except ValueError:
        raise ApiError.bad_request(f"limit must be an integer, got {limit!r}") from None
    if size <= 0 or len(items) <= size:
        return items, {}
    page = items[:size]
    last = page[-1]["metadata"]
    next_token = base64.urlsafe_b64encode(json.dumps([last.get("namespace", ""), last["name"]]).encode()).decode()
    return page, {"continue": next_token, "remainingItemCount": len(items) - len(page), "resourceVersion": rv}


def _scale_of(obj: Obj) -> Obj:
    meta = obj["metadata"]
    selector = obj.get("spec", {}).get("selector", {}).get("matchLabels", {})
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta
        },
        "spec": {"replicas": obj.get("spec", {}).get("replicas", 1)},
        "status": {
            "replicas": obj.get("status", {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(selector.items())),
        },
    }


def _validate_core_event(rt: ResourceType, namespace: str, body: Obj) -> None:
    """core/v1 Event validation: the event lives in its object's namespace ("default" for
    cluster-scoped objects such as nodes), as ValidateEventCreate demands."""
    involved = body.get("involvedObject") or {}
    name = body.get("metadata", {}).get("name") or body.get("metadata", {}).get("generateName", "")
    problems = []
    if not involved.get("name") or not involved.get("kind"):
        problems.append("involvedObject: Required value: name and kind")
    if not body.get("reason"):
        problems.append("reason: Required value")
    object_ns = involved.get("namespace") or ""
    if (object_ns and object_ns != namespace) or (not object_ns and namespace not in ("", "default")):
        problems.append(f'involvedObject.namespace: Invalid value: "{object_ns}": does not match event.namespace')
    if body.get("type") and body["type"] not in {"Normal", "Warning"}:
        problems.append(f'type: Unsupported value: "{body["type"]}": supported values: "Normal", "Warning"')
    if problems:
        raise ApiError.invalid(rt, name, ", ".join(problems))


def _validate_event(rt: ResourceType, body: Obj) -> None:
    required = ("eventTime", "reportingController", "reportingInstance", "action", "reason", "type")
    missing = [f for f in required if not body.get(f)]
    if missing:
        name = body.get("metadata", {}).get("name", "")
        raise ApiError.invalid(rt, name, "; ".join(f"{f}: Required value" for f in missing))
    if body["type"] not in {"Normal", "Warning"}:
        raise ApiError.invalid(
            rt,
            body.get("metadata", {}).get("name", ""),
            f'type: Unsupported value: "{body["type"]}": supported values: "Normal", "Warning"',
        )
