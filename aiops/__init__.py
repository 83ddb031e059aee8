"""aiops: predict and heal failures of AI workloads on Kubernetes from Prometheus signals."""

__version__ = "0.1.0"
