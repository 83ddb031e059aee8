"""The configured channels as notifier plugins: built for the daemon and the CLI, checked for
``aiops check-config``."""

from __future__ import annotations

from aiops import plugins
from aiops.config.notify import NotifyConfig
from aiops.plugins import Notifier


def check_channels(config: NotifyConfig) -> list[tuple[str, str]]:
    """(config key, problem) for each enabled channel whose params or secrets are wrong, for
    ``aiops check-config``. Constructing a notifier does no network I/O."""
    problems: list[tuple[str, str]] = []
    for name, ch in config.channels.items():
        if not ch.enabled:
            continue
        try:
            plugins.instantiate(plugins.NOTIFIERS, ch.plugin, dict(ch.params)).close()
        except plugins.PluginError as exc:
            problems.append((f"notify.channels.{name}.params", str(exc)))
    return problems


def build_notifiers(config: NotifyConfig) -> dict[str, Notifier]:
    """Instantiate the enabled channels; a bad channel config raises PluginError naming the channel."""
    out: dict[str, Notifier] = {}
    for name, ch in config.channels.items():
        if not ch.enabled:
            continue
        try:
            out[name] = plugins.instantiate(plugins.NOTIFIERS, ch.plugin, dict(ch.params))
        except plugins.PluginError as exc:
            for n in out.values():
                n.close()
            raise plugins.PluginError(f"notify.channels.{name}: {exc}") from None
    return out
