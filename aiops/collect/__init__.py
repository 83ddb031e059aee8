"""collect: Prometheus -> Frame."""
