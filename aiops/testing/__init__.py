"""The published test kit: the plugin contract checks (:func:`check_detector`,
:func:`check_remediation`), the in-repo Kubernetes API server, the Alertmanager launcher, SMTP and
DingTalk receivers, and cluster-history fixtures with realistic faults.

Only tests import it (it may need the ``test`` extra); the shipped code never does, which
``tests/test_package_layout.py`` enforces. What ``aiops demo`` runs on lives in :mod:`aiops.demo`."""

from aiops.testing.contracts import ContractError, check_detector, check_remediation

__all__ = ["ContractError", "check_detector", "check_remediation"]
