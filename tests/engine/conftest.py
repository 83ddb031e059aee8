"""Fixtures: the test API server seeded with a small GPU cluster (see tests/safety/kubecluster.py)."""

from tests.engine.kubecluster import server

__all__ = ["server"]
