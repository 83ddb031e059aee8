from __future__ import annotations

from typing import Any

from pydantic import Field

from aiops.config.base import StrictModel


class ChannelConfig(StrictModel):
    plugin: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class NotifyConfig(StrictModel):
    channels: dict[str, ChannelConfig] = Field(default_factory=lambda: {"console": ChannelConfig(plugin="console")})
