"""Kill switch: a ConfigMap key or a file that stops every write (an unreadable one stops them too).

:class:`KillSwitch` reads the switch (at most once a cycle) and remembers in the store that the
ConfigMap existed, so a deleted one keeps counting as engaged; :class:`KillSwitchRail` refuses
every plan while it is engaged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from aiops.config.safety import KillSwitchConfig
from aiops.engine.rails.base import TRUE_VALUES, RailContext, RailName, Refusal
from aiops.kube.errors import KubeApiError
from aiops.state import Store

log = logging.getLogger(__name__)

FALSE_VALUES = frozenset({"false", "0", "no", "off"})


class KillSwitch:
    """Engaged by a ConfigMap key or a file. It fails closed, loudly: a value it does not
    understand, a ConfigMap it cannot read, or one that was there and is gone (deleted, or its key
    removed) all count as engaged, with a warning that says how to release it."""

    SEEN_KEY = "safety.kill_switch.seen"

    def __init__(
        self,
        config: KillSwitchConfig,
        read_configmap: Callable[[], str | None] | None = None,
        *,
        namespace: str = "",
        store: Store | None = None,
    ) -> None:
        self.config = config
        self.namespace = config.configmap_namespace or namespace
        self._read_configmap = read_configmap
        self._store = store
        self._seen = bool(store.get(self.SEEN_KEY, False)) if store is not None else False
        self._reading: str | None = None

    def begin_cycle(self) -> None:
        """Forget the cached reading: the switch is read at most once per cycle."""
        self._reading = None

    def engaged(self) -> str:
        """Why writes are switched off, or "" when they are not (cached for the cycle)."""
        cached = self._reading
        if cached is None:
            cached = self._reading = self._read()
            if cached and not cached.startswith("kill switch engaged by"):
                log.warning("kill switch counts as ENGAGED: %s", cached)
        return cached

    def _read(self) -> str:
        path: Path | None = self.config.file
        if path is not None and path.exists():
            try:
                text = path.read_text(encoding="utf-8").strip().lower()
            except OSError as exc:
                return f"kill switch file {path} exists but cannot be read ({exc.strerror}); treating it as engaged"
            if text not in FALSE_VALUES:
                return f"kill switch file {path} is present; remove it to allow actions again"
        if self._read_configmap is not None:
            cm = f"{self.namespace}/{self.config.configmap_name}"
            key = self.config.configmap_key
            try:
                value = self._read_configmap()
            except KubeApiError as exc:
                return f"cannot read the kill switch ConfigMap {cm} ({exc}); not acting until it can be read"
            if value is None:
                if self._seen:
                    return (f"the kill switch ConfigMap {cm} (key {key}) was there and is gone; treating it as "
                            f'engaged until it is recreated with {key}: "false"')
                return ""  # never created: the ConfigMap switch is not in use
            self._remember()
            text = value.strip().lower()
            if text in TRUE_VALUES:
                return f'kill switch engaged by ConfigMap {cm} key {key}={value!r}; set it to "false" to allow actions again'
            if text not in FALSE_VALUES:
                return (f'kill switch ConfigMap {cm} key {key}={value!r} is neither "true" nor "false"; treating it '
                        f'as engaged until it says "false"')
        return ""

    def _remember(self) -> None:
        if not self._seen:
            self._seen = True
            if self._store is not None:
                self._store.put(self.SEEN_KEY, True)


class KillSwitchRail:
    names: ClassVar[tuple[RailName, ...]] = (RailName.KILL_SWITCH,)
    admission_only: ClassVar[bool] = False

    def check(self, ctx: RailContext) -> Refusal | None:
        reason = ctx.writer.kill_switch.engaged()
        return Refusal(RailName.KILL_SWITCH, reason) if reason else None

