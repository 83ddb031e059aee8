"""Decoding of the few protobuf request bodies kubectl sends to the test API server.

``kubectl auth can-i`` posts SelfSubjectAccessReview / SelfSubjectRulesReview, and ``kubectl
create configmap|namespace`` their objects, with ``Content-Type: application/vnd.kubernetes.protobuf``
(accepting JSON back). Only those messages are decoded, by the field numbers of k8s.io/api's
generated.proto files; every other protobuf body is refused with 415.
"""

from __future__ import annotations

from typing import Any

MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    """The body is not a Kubernetes protobuf envelope of a supported type."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def fields(data: bytes) -> dict[int, list[bytes | int]]:
    """Field number -> values (bytes for length-delimited, int for varints) of one message."""
    out: dict[int, list[bytes | int]] = {}
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.setdefault(number, []).append(value)
        elif wire == 2:
            length, pos = _varint(data, pos)
            out.setdefault(number, []).append(data[pos : pos + length])
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return out


def _text(msg: dict[int, list[bytes | int]], number: int) -> str:
    values = msg.get(number)
    value = values[0] if values else b""
    return value.decode() if isinstance(value, bytes) else str(value)


def _message(msg: dict[int, list[bytes | int]], number: int) -> dict[int, list[bytes | int]]:
    values = msg.get(number)
    value = values[0] if values else b""
    return fields(value) if isinstance(value, bytes) else {}


def _string_map(msg: dict[int, list[bytes | int]], number: int) -> dict[str, str]:
    """A ``map<string, string>`` field: repeated entries of {key = 1, value = 2}."""
    out = {}
    for raw in msg.get(number, ()):
        entry = fields(raw) if isinstance(raw, bytes) else {}
        out[_text(entry, 1)] = _text(entry, 2)
    return out


def _object_meta(meta: dict[int, list[bytes | int]]) -> dict[str, Any]:
    """The ObjectMeta fields a client sets on create: name, generateName, namespace, labels, annotations."""
    out: dict[str, Any] = {}
    for number, key in ((1, "name"), (2, "generateName"), (3, "namespace")):
        if _text(meta, number):
            out[key] = _text(meta, number)
    for number, key in ((11, "labels"), (12, "annotations")):
        entries = _string_map(meta, number)
        if entries:
            out[key] = entries
    return out


def decode(body: bytes) -> dict[str, Any]:
    """A ``runtime.Unknown`` envelope holding an authorization.k8s.io/v1 review, as JSON would read."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    envelope = fields(body[len(MAGIC) :])
    type_meta = _message(envelope, 1)
    api_version, kind = _text(type_meta, 1), _text(type_meta, 2)
    raw = envelope.get(2, [b""])[0]
    obj = fields(raw if isinstance(raw, bytes) else b"")
    spec = _message(obj, 2)
    if kind == "SelfSubjectAccessReview":
        attrs = _message(spec, 1)
        names = ("namespace", "verb", "group", "version", "resource", "subresource", "name")
        resource_attributes = {key: _text(attrs, i) for i, key in enumerate(names, start=1) if _text(attrs, i)}
        return {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {},
            "spec": {"resourceAttributes": resource_attributes},
        }
    if kind == "SelfSubjectRulesReview":
        return {"apiVersion": api_version, "kind": kind, "metadata": {}, "spec": {"namespace": _text(spec, 1)}}
    if kind == "ConfigMap":  # kubectl create configmap (the kill switch)
        out: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": _object_meta(_message(obj, 1))}
        for number, key in ((2, "data"), (3, "binaryData")):
            entries = _string_map(obj, number)
            if entries:
                out[key] = entries
        return out
    if kind == "Namespace":  # kubectl create namespace
        return {"apiVersion": api_version, "kind": kind, "metadata": _object_meta(_message(obj, 1))}
    raise ProtobufError(f"protobuf bodies of kind {kind or '?'} are not supported; send JSON")
