"""Fixtures: the test API server seeded with a small GPU cluster (see tests/safety/kubecluster.py)."""

from tests.safety.kubecluster import server

__all__ = ["server"]
