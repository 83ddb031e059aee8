"""Console channel: the digest as plain text on stdout (or stderr). The default channel, and what
``aiops once`` and ``aiops demo`` show."""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import ClassVar, Literal, TextIO

from aiops.config.base import StrictModel
from aiops.model import Notification
from aiops.notify.formatting import digest, to_text
from aiops.notify.params import parse_params
from aiops.plugins import Delivery, DeliveryStatus, Notifier


class ConsoleParams(StrictModel):
    stream: Literal["stdout", "stderr"] = "stdout"


class ConsoleNotifier(Notifier):
    name: ClassVar[str] = "console"
    # Printing twice after a crash is harmless.
    redeliver_after_crash: ClassVar[bool] = True
    _lock = threading.Lock()  # digests from parallel flushes must not interleave

    def __init__(self, **params: object) -> None:
        self.params = parse_params(ConsoleParams, params)

    def _stream(self) -> TextIO:
        return sys.stdout if self.params.stream == "stdout" else sys.stderr

    def send(self, batch: Sequence[Notification]) -> Delivery:
        if not batch:
            return Delivery(DeliveryStatus.DELIVERED, "nothing to send")
        text = to_text(digest(batch))
        try:
            with self._lock:
                stream = self._stream()
                stream.write(text + "\n")
                stream.flush()
        except OSError as exc:  # a closed pipe is a delivery problem, not a crash
            return Delivery(DeliveryStatus.RETRY, f"cannot write to {self.params.stream}: {exc.strerror}")
        return Delivery(DeliveryStatus.DELIVERED, f"printed {len(batch)} notification(s)")
