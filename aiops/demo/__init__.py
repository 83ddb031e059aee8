"""What ``aiops demo`` runs on, shipped as product code: a launcher for the real Prometheus
(:mod:`aiops.demo.prometheus`), the seeded synthetic cluster history it is backfilled with
(:mod:`aiops.demo.synth`) and the exporter that keeps that history live under ``--serve``
(:mod:`aiops.demo.livefeed`).

They live here rather than in :mod:`aiops.testing` because the CLI needs them at run time and the
wheel's runtime dependencies cover them; the tests and benchmarks use them too. :mod:`aiops.testing`
is the published test kit (contract checks, fakes, receivers) and nothing outside it imports it.
"""
