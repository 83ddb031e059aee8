"""One error hierarchy: every error aiops raises on purpose says whether to retry and what to do.

As in kopf, there are two kinds. A *temporary* error (a timeout, HTTP 429 or 5xx, a 409 on a lease)
may go away by itself: the stage marks the cycle degraded and the next cycle tries again. A
*permanent* one (HTTP 403, an invalid config or query, a plugin that does not load) will not: it
is reported with a ``hint`` that tells the operator what to change. The kind is one attribute,
``temporary``, read the same way everywhere (:func:`is_temporary`), whatever raised it, and the
hint reaches people the same way everywhere (:func:`explain`), whatever prints it.

The concrete errors keep their own classes (``ConfigError``, ``PrometheusError``,
``KubeApiError`` …) and their modules, so ``except PrometheusError`` still works; they all derive
from :class:`AiopsError`. This module imports nothing from aiops, so any module may import it.
"""

from __future__ import annotations


class AiopsError(Exception):
    """Base of every error aiops raises on purpose.

    ``temporary``: a later retry may succeed without anyone changing anything.
    ``hint``: what to do next, in words for the operator ("" when the message says it already).
    Subclasses set class defaults for both; an instance may override them.
    """

    temporary: bool = False
    hint: str = ""

    def __init__(self, message: str = "", *, temporary: bool | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        if temporary is not None:
            self.temporary = temporary
        if hint is not None:
            self.hint = hint


class TemporaryError(AiopsError):
    """Retry later: the cause (an outage, throttling, a conflict) is expected to pass."""

    temporary = True


class PermanentError(AiopsError):
    """Do not retry: something must be changed first; ``hint`` says what."""

    temporary = False


def is_temporary(exc: BaseException, *, default: bool = False) -> bool:
    """Whether ``exc`` may go away by retrying; ``default`` for exceptions outside the hierarchy
    (a bug in a plugin is not known to be either)."""
    return exc.temporary if isinstance(exc, AiopsError) else default


def explain(exc: BaseException) -> str:
    """The error for people: its text, then ``hint: …`` on a line of its own when it has a hint
    that the text does not already say."""
    text = str(exc)
    hint = exc.hint if isinstance(exc, AiopsError) else ""
    return f"{text}\nhint: {hint}" if hint and hint not in text else text


__all__ = ["AiopsError", "PermanentError", "TemporaryError", "explain", "is_temporary"]
