"""Several signals' queries in one range query: a steady cycle's cost was its requests, not its points.

A steady cycle fetches each signal's few new steps: at 10k series, 36 requests of one to three
points a series, and what the daemon spends on them is per request (the HTTP exchange, the
answer's envelope, a thread hand-off). A replica holding one shard of three spent more on its
collect than the unsharded replica did (bench/README.md, issue 17). PromQL can ask them together:
each query is wrapped in ``label_replace(q, "__aiops_leg__", "<k>", "", "")`` and the legs are
joined with ``or``, so Prometheus (or Thanos, Mimir, VictoriaMetrics: the same API) evaluates them
in turn and returns every series with the number of the leg it came from. The label also keeps the
legs apart: ``or`` matches series on their labels without the metric name, so two signals whose
series differ only by name would otherwise drop one another's. ``__`` is Prometheus's reserved
prefix: no exporter writes such a label.

How the collector uses it (aiops/collect/collector.py):

* Only short fetches go together (a steady cycle's, at most :data:`COMBINE_STEPS` steps); a cold
  fetch, or a shard just taken over, keeps its own chunked requests.
* Only signals of few series (at most :data:`COMBINE_SERIES` in the window): what a request
  saves is fixed (about 0.7 ms of the daemon's CPU at 10k series), what a leg costs the server
  grows with its series (``label_replace`` copies each series' labels at every step and ``or``
  hashes them, about 30 µs a series at 100k), and it is evaluated in turn with the others. At
  100k series the steady signals asked by kind, 4 requests, took Prometheus 1.9–2.4 s of CPU and
  1.0–1.25 s of wall against 1.3–1.5 s and 0.73–0.83 s asked one by one (bench/README.md).
* A request the server refuses (a broken query in the config) is asked again signal by signal at
  once, so only the broken signal is missing and its error names it. A request that fails for a
  temporary reason (a timeout, a 503) leaves its signals missing for the cycle, and each of them is
  fetched alone the next cycle: one slow signal never blinds the others twice.
* An answer whose series do not all carry the leg label (a store or proxy that drops it) cannot
  be split without guessing: that store is then asked one query per signal for good, and the log
  says so once.
* The server evaluates one request's legs one after the other, so no request holds much more
  than 1/``max_concurrency`` of the signals: the fetch's wall time stays about that of the
  parallel per-signal fetch. And one entity kind's signals per request: a request's label memo
  (aiops/collect/decode.py) holds only while none of its series changes, and pods come and go.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from aiops.collect.decode import Block
from aiops.errors import PermanentError

LEG_LABEL = "__aiops_leg__"
# A fetch of at most this many steps may go with others (a steady cycle asks for 3).
COMBINE_STEPS = 30
# A signal of more series goes alone: about where a request saved (~0.7 ms of the daemon's CPU)
# equals what its leg costs the server (~30 µs a series), measured at 10k and 100k series.
COMBINE_SERIES = 24


def combined_query(queries: Sequence[str]) -> str:
    """One query for ``queries``: leg ``k`` is ``queries[k]``, its series labelled with ``k``."""
    return " or ".join(f'label_replace({q}, "{LEG_LABEL}", "{k}", "", "")' for k, q in enumerate(queries))


class LostLegs(PermanentError, ValueError):
    """A combined answer has series without a valid leg label: which signal they answer is unknown."""


def _leg(labels: dict[str, str], legs: int) -> int:
    try:
        k = int(labels.get(LEG_LABEL, ""))
    except ValueError:
        return -1
    return k if 0 <= k < legs else -1


class LegSplitter:
    """A combined answer's blocks split into one block per leg, without the leg label.

    The client hands out the very same label list while a query's answer repeats the last one's
    labels (aiops/collect/decode.py LabelMemo); the split is remembered for it, so each leg's label
    list is then the same object cycle after cycle too, which the window recognises
    (aiops/collect/window.py) and the stripped label sets are not built again.
    """

    def __init__(self) -> None:
        # Per combined query: (the answer's label list, each series' leg, each leg's rows, each leg's labels).
        self._memo: dict[str, tuple[list[dict[str, str]], np.ndarray, list[np.ndarray], list[list[dict[str, str]]]]] = {}

    def split(self, query: str, block: Block, legs: int) -> list[Block]:
        """``block`` as one block per leg; raises :class:`LostLegs` if a series has no leg."""
        memo = self._memo.get(query)
        if memo is None or memo[0] is not block.labels:  # the query's text fixes its legs
            leg_of = np.fromiter((_leg(lab, legs) for lab in block.labels), dtype=np.int64, count=len(block.labels))
            if (leg_of < 0).any():
                raise LostLegs(f"{int((leg_of < 0).sum())} of {len(leg_of)} series came back without {LEG_LABEL}")
            stripped = [{k: v for k, v in lab.items() if k != LEG_LABEL} for lab in block.labels]
            rows = [np.flatnonzero(leg_of == k) for k in range(legs)]
            memo = self._memo[query] = (block.labels, leg_of, rows, [[stripped[i] for i in r.tolist()] for r in rows])
        _, leg_of, rows, labels = memo
        at_point = np.repeat(leg_of, block.counts)
        out = []
        for k in range(legs):
            points = at_point == k
            out.append(Block(labels[k], block.counts[rows[k]], block.timestamps[points], block.values[points]))
        return out

    def retain(self, queries: Iterable[str]) -> None:
        """Forget the splits of every query but ``queries`` (a batch's text changes with its signals)."""
        keep = set(queries)
        for query in [q for q in self._memo if q not in keep]:
            del self._memo[query]
