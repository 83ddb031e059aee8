"""Channel params validation with errors that name the parameter, like the rest of the config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from aiops.plugins import params_problems

M = TypeVar("M", bound=BaseModel)


def parse_params(model: type[M], params: Mapping[str, Any]) -> M:
    """Validate ``params``; raise ValueError listing ``param: reason`` (never the input values)."""
    try:
        return model.model_validate(dict(params))
    except ValidationError as exc:
        raise ValueError("; ".join(f"{k or '(params)'}: {m}" for k, m in params_problems(model, exc))) from None
