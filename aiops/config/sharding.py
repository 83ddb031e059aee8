from __future__ import annotations

from pydantic import Field

from aiops.config.base import StrictModel


class ShardingConfig(StrictModel):
    """Split the cluster's entities over replicas (see aiops/engine/shards.py and docs/scaling.md).

    ``shards: 1`` (the default) is one daemon for the whole cluster, with the single leader
    Lease of ``kubernetes.leader_election``. With ``shards: N`` each shard has its own
    coordination.k8s.io Lease named ``<lease_prefix>-<i>`` (timings from
    ``kubernetes.leader_election``); a replica holds at most ceil(N / live replicas) of them.
    """

    shards: int = Field(default=1, ge=1, le=256)
    lease_prefix: str = Field(default="aiops-shard", min_length=1, max_length=200)
