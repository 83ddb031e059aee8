"""Channel params validation with errors that name the parameter, like the rest of the config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def parse_params(model: type[M], params: Mapping[str, Any]) -> M:
    """Validate ``params``; raise ValueError listing ``param: reason`` (never the input values)."""
    try:
        return model.model_validate(dict(params))
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            key = ".".join(str(p) for p in err["loc"]) or "(params)"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown parameter; known: {', '.join(sorted(f.alias or n for n, f in model.model_fields.items()))}"
            problems.append(f"{key}: {msg}")
        raise ValueError("; ".join(problems)) from None
