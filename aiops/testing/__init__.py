"""Real-component launchers and faithful fakes used by the tests and by ``aiops demo``, and the
published plugin contract checks (:func:`check_detector`, :func:`check_remediation`)."""

from aiops.testing.contracts import ContractError, check_detector, check_remediation

__all__ = ["ContractError", "check_detector", "check_remediation"]
