"""Plain text shared by everything people read: cycle reports, notifications, advice, config checks.

One sparkline and one way to shorten a list, so a terminal report and a DingTalk message draw the
same values the same way (an infinite value among them is a gap in both, never an error).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

_SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int = 24) -> str:
    """Unicode block sparkline of the last ``width`` values; gaps (NaN, ±Inf) are shown as spaces."""
    vals = [float(v) for v in values][-width:]
    finite = [v for v in vals if math.isfinite(v)]
    if not finite:
        return ""
    lo, hi = min(finite), max(finite)
    span = hi - lo
    out = []
    for v in vals:
        if not math.isfinite(v):
            out.append(" ")
        elif span == 0:
            out.append(_SPARK[len(_SPARK) // 2])
        else:
            out.append(_SPARK[min(len(_SPARK) - 1, int((v - lo) / span * len(_SPARK)))])
    return "".join(out)


def listed(names: Sequence[str], shown: int = 5) -> str:
    """``a, b, c and 4 more``: the first ``shown`` names, then how many were left out."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
