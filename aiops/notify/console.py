"""A notifier that writes notifications to standard output: the demo's channel, and a safe default."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from aiops.model import Notification
from aiops.plugins import Delivery, DeliveryStatus, Notifier


class ConsoleNotifier(Notifier):
    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def send(self, batch: Sequence[Notification]) -> Delivery:
        out = self.stream or sys.stdout
        try:
            for n in batch:
                state = "RESOLVED" if n.resolved else n.severity.value.upper()
                out.write(f"[{state}] {n.title}\n    {n.summary}\n")
            out.flush()
        except OSError as exc:
            return Delivery(DeliveryStatus.RETRY, f"cannot write to the console: {exc}")
        return Delivery(DeliveryStatus.DELIVERED)
