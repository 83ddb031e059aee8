"""What a backtest says when its input cannot be used, and what it says about one bad file of many.

Everything a person hands ``aiops backtest`` (data files, label files, ``--param``, ``--grid``,
``--step`` ...) is checked where it is read, and what is wrong is a :class:`ReplayError`: a
permanent error (:mod:`aiops.errors`) whose message says what is wrong in one line and whose
``hint`` says what to do next, so that the command prints the two and stops with the usage status.
Internal invariants (a detector returning the wrong shape, two arrays of one file that differ)
stay ``ValueError``: no input of the user's makes them, and no hint would help.

One bad file of a corpus never stops the corpus (issue 14): it becomes a :class:`Failure`, listed
after the report with its reason; each distinct hint is printed once, however many files share it.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiops.errors import AiopsError, PermanentError

__all__ = ["Failure", "ReplayError"]


class ReplayError(PermanentError):
    """Backtest input that cannot be used; the message names the input, ``hint`` what to change."""


@dataclass(frozen=True)
class Failure:
    """Why one file was left out of every figure, and what would let it in."""

    reason: str
    hint: str = ""

    @classmethod
    def of(cls, exc: BaseException) -> Failure:
        """An error of ours as it says itself; anything else (a detector bug) with its type."""
        if isinstance(exc, AiopsError):
            return cls(str(exc), exc.hint)
        return cls(f"{type(exc).__name__}: {exc}")
