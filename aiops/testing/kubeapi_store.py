"""The in-memory object store of the test API server: CRUD with the apiserver's bookkeeping.

Every object gets ``metadata.uid``, ``resourceVersion`` (one global counter, as etcd's revision),
``creationTimestamp`` and, for objects with a spec, ``generation``. Updates carrying a stale
``resourceVersion`` fail with 409 Conflict; creates of an existing name with 409 AlreadyExists.
"""

from __future__ import annotations

import copy
import itertools
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiops.testing.kubeapi_resources import ResourceType

Obj = dict[str, Any]
Key = tuple[str, str, str, str]  # group, plural, namespace, name


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_body(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> Obj:
    """A ``metav1.Status``: the body of every error (and of a successful eviction)."""
    body: Obj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "code": code,
    }
    if message:
        body["message"] = message
    if reason:
        body["reason"] = reason
    if details:
        body["details"] = details
    return body


@dataclass
class ApiError(Exception):
    """An apiserver error response: HTTP code, ``Status.reason`` and message."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def body(self) -> Obj:
        return status_body(self.code, self.reason, self.message, self.details or None)

    @classmethod
    def not_found(cls, rt: ResourceType, name: str) -> ApiError:
        return cls(404, "NotFound", f'{rt.qualified} "{name}" not found', _details(rt, name))

    @classmethod
    def already_exists(cls, rt: ResourceType, name: str) -> ApiError:
        return cls(409, "AlreadyExists", f'{rt.qualified} "{name}" already exists', _details(rt, name))

    @classmethod
    def conflict(cls, rt: ResourceType, name: str) -> ApiError:
        return cls(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {rt.qualified} "{name}": the object has been modified; '
            "please apply your changes to the latest version and try again",
            _details(rt, name),
        )

    @classmethod
    def invalid(cls, rt: ResourceType, name: str, message: str) -> ApiError:
        return cls(422, "Invalid", f'{rt.kind} "{name}" is invalid: {message}', {**_details(rt, name), "kind": rt.kind})

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, "BadRequest", message)


def _details(rt: ResourceType, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": rt.plural}
    if rt.group:
        details["group"] = rt.group
    return details


def keep_status(rt: ResourceType, current: Obj, obj: Obj) -> None:
    """A write to the main resource of a type with a status subresource cannot change status."""
    if "status" in rt.subresources:
        if "status" in current:
            obj["status"] = copy.deepcopy(current["status"])
        else:
            obj.pop("status", None)


# Called after a write is persisted: (store, resource type, new object, old object or None).
WriteHook = Callable[["ObjectStore", ResourceType, Obj, Obj | None], None]


class ObjectStore:
    """Thread-safe objects by (group, plural, namespace, name). Returns deep copies only."""

    def __init__(self) -> None:
        self._objects: dict[Key, Obj] = {}
        self._lock = threading.RLock()
        self._rv = itertools.count(1000)
        self._hooks: dict[tuple[str, str], list[WriteHook]] = {}
        # Recent changes for watches: (resourceVersion, type, key, object), oldest first.
        self._changes: deque[tuple[int, str, Key, Obj]] = deque(maxlen=10_000)
        self._changed = threading.Condition(self._lock)

    @property
    def lock(self) -> threading.RLock:
        """Held across a read-decide-write sequence (eviction) to make it atomic, as etcd would."""
        return self._lock

    def on_write(self, rt: ResourceType, hook: WriteHook) -> None:
        self._hooks.setdefault((rt.group, rt.plural), []).append(hook)

    def _key(self, rt: ResourceType, namespace: str, name: str) -> Key:
        return rt.group, rt.plural, namespace if rt.namespaced else "", name

    def _stamp(self, obj: Obj) -> None:
        obj["metadata"]["resourceVersion"] = str(next(self._rv))

    def _changed_now(self, kind: str, key: Key, obj: Obj) -> None:
        self._changes.append((int(obj["metadata"]["resourceVersion"]), kind, key, copy.deepcopy(obj)))
        self._changed.notify_all()

    def changes(self, rt: ResourceType, namespace: str, after: int, timeout: float) -> list[tuple[str, Obj]]:
        """Watch events of ``rt`` newer than resourceVersion ``after``, waiting up to ``timeout`` for one."""
        with self._changed:

            def pending() -> list[tuple[str, Obj]]:
                return [
                    (kind, copy.deepcopy(obj))
                    for rv, kind, (g, p, ns, _), obj in self._changes
                    if rv > after and g == rt.group and p == rt.plural and (not namespace or ns == namespace)
                ]

            found = pending()
            if not found and timeout > 0:
                self._changed.wait(timeout)
                found = pending()
            return found

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        with self._lock:
            obj = self._objects.get(self._key(rt, namespace, name))
            if obj is None:
                raise ApiError.not_found(rt, name)
            return copy.deepcopy(obj)

    def list(
        self, rt: ResourceType, namespace: str = "", predicate: Callable[[Obj], bool] | None = None
    ) -> tuple[list[Obj], str]:
        """Objects (in all namespaces when ``namespace`` is empty) and the list's resourceVersion."""
        with self._lock:
            items = [
                copy.deepcopy(obj)
                for (g, p, ns, _), obj in sorted(self._objects.items())
                if g == rt.group
                and p == rt.plural
                and (not namespace or ns == namespace)
                and (predicate is None or predicate(obj))
            ]
            return items, self.resource_version

    @property
    def resource_version(self) -> str:
        with self._lock:
            latest = self._changes[-1][0] if self._changes else 999
            return str(max([latest, *(int(o["metadata"]["resourceVersion"]) for o in self._objects.values())]))

    def iter_all(self) -> Iterator[Obj]:
        with self._lock:
            return iter([copy.deepcopy(o) for o in self._objects.values()])

    def create(self, rt: ResourceType, namespace: str, obj: Obj, *, dry_run: bool = False) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name")
        if not name:
            raise ApiError.invalid(rt, "", "metadata.name: Required value: name or generateName is required")
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise ApiError.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        obj["apiVersion"], obj["kind"] = rt.group_version, rt.kind
        with self._lock:
            key = self._key(rt, namespace, name)
            if key in self._objects:
                raise ApiError.already_exists(rt, name)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            meta.pop("resourceVersion", None)
            if "spec" in obj:
                meta["generation"] = 1
            if dry_run:
                meta["resourceVersion"] = ""
                return obj
            self._stamp(obj)
            self._objects[key] = obj
            self._changed_now("ADDED", key, obj)
            self._run_hooks(rt, obj, None)
            return copy.deepcopy(self._objects[key])

    def update(
        self, rt: ResourceType, namespace: str, name: str, obj: Obj, *, dry_run: bool = False, subresource: str = ""
    ) -> Obj:
        """PUT semantics: replace, with optimistic concurrency when the body carries a resourceVersion."""
        with self._lock:
            current = self.get(rt, namespace, name)
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            if meta.get("name", name) != name:
                raise ApiError.bad_request(
                    f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
                )
            sent_rv = meta.get("resourceVersion")
            if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
                raise ApiError.conflict(rt, name)
            if subresource == "status":
                merged = copy.deepcopy(current)
                merged["status"] = obj.get("status", {})
                obj = merged
            elif "status" in rt.subresources:
                keep_status(rt, current, obj)
            return self._commit(rt, current, obj, dry_run=dry_run)

    def replace_unchecked(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        obj: Obj,
        *,
        dry_run: bool = False,
        allow_deletion_mark: bool = False,
    ) -> Obj:
        """Store a new version computed from the current one (PATCH, controllers): no rv check."""
        with self._lock:
            current = self.get(rt, namespace, name)
            return self._commit(rt, current, obj, dry_run=dry_run, allow_deletion_mark=allow_deletion_mark)

    def _commit(
        self, rt: ResourceType, current: Obj, obj: Obj, *, dry_run: bool, allow_deletion_mark: bool = False
    ) -> Obj:
        meta = obj.setdefault("metadata", {})
        # Identity and bookkeeping fields are the server's, whatever the client sent.
        server_owned = ["uid", "creationTimestamp", "name", "namespace", "generation"]
        if not allow_deletion_mark:
            server_owned += ["deletionTimestamp", "deletionGracePeriodSeconds"]
        for immutable in server_owned:
            if immutable in current["metadata"]:
                meta[immutable] = current["metadata"][immutable]
            else:
                meta.pop(immutable, None)
        obj["apiVersion"], obj["kind"] = rt.group_version, rt.kind
        if "spec" in obj and obj.get("spec") != current.get("spec"):
            meta["generation"] = int(current["metadata"].get("generation", 0)) + 1
        if dry_run:
            meta["resourceVersion"] = current["metadata"]["resourceVersion"]
            return obj
        self._stamp(obj)
        key = self._key(rt, current["metadata"].get("namespace", ""), current["metadata"]["name"])
        self._objects[key] = obj
        self._changed_now("MODIFIED", key, obj)
        self._run_hooks(rt, obj, current)
        return copy.deepcopy(self._objects[key])

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        *,
        dry_run: bool = False,
        preconditions: dict[str, Any] | None = None,
        orphan: bool = False,
    ) -> Obj:
        with self._lock:
            current = self.get(rt, namespace, name)
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != current["metadata"]["uid"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {rt.qualified} "{name}": Precondition failed: UID in precondition: {pre["uid"]}, UID in object meta: {current["metadata"]["uid"]}',
                )
            if pre.get("resourceVersion") and pre["resourceVersion"] != current["metadata"]["resourceVersion"]:
                raise ApiError.conflict(rt, name)
            if not dry_run:
                key = self._key(rt, namespace, name)
                del self._objects[key]
                gone = copy.deepcopy(current)
                self._stamp(gone)
                self._changed_now("DELETED", key, gone)
                if not orphan:
                    self._collect_dependents(current["metadata"]["uid"])
            return current

    def _collect_dependents(self, owner_uid: str) -> None:
        """The garbage collector, run at once: delete what the deleted object owned, recursively."""
        for key, obj in list(self._objects.items()):
            if key in self._objects and any(
                ref.get("uid") == owner_uid for ref in obj["metadata"].get("ownerReferences", ())
            ):
                del self._objects[key]
                gone = copy.deepcopy(obj)
                self._stamp(gone)
                self._changed_now("DELETED", key, gone)
                self._collect_dependents(obj["metadata"]["uid"])

    def _run_hooks(self, rt: ResourceType, obj: Obj, old: Obj | None) -> None:
        for hook in self._hooks.get((rt.group, rt.plural), ()):
            hook(self, rt, copy.deepcopy(obj), old)
