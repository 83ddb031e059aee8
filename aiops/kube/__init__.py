"""Thin adapters over the official ``kubernetes`` client: read cluster state; write only through the guarded writer.

- :mod:`aiops.kube.client`: an ``ApiClient`` from config (in-cluster or kubeconfig), with timeouts.
- :mod:`aiops.kube.view`: :class:`~aiops.kube.view.ClusterView`, the immutable snapshot plans use.
- :mod:`aiops.kube.read`: reading a view, the kill-switch ConfigMap and the action ledger (Events).
- :mod:`aiops.kube.writer`: :class:`~aiops.kube.writer.KubeWriter`, the one sender of writes
  (used only by :class:`aiops.engine.safety.GuardedWriter`; dry-run sends ``dryRun=All``).
- :mod:`aiops.kube.plan`: multi-cycle plans and the annotations aiops leaves on objects.
- :mod:`aiops.kube.errors`: API errors sorted into temporary (retry later) and permanent.
"""
