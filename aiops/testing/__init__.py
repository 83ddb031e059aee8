"""Real-component launchers and faithful fakes used by the tests and by ``aiops demo``."""
