"""notify: routing, grouping, de-duplication and the persistent outbox; channels are plugins.

- :mod:`aiops.notify.stage` — the pipeline's notify stage (:class:`~aiops.notify.stage.NotifyStage`),
  which runs one module per step: :mod:`~aiops.notify.build` → :mod:`~aiops.notify.routing` (routes:
  severity and labels to channels, and the route's mentions and links) → :mod:`~aiops.notify.dedup`
  (the ledger) → :mod:`~aiops.notify.resolve` → :mod:`~aiops.notify.storm` → the outbox, over one
  :mod:`~aiops.notify.batch`; :mod:`~aiops.notify.replicas` lets only the leader send.
- :mod:`aiops.notify.channels` — ``build_notifiers``/``check_channels`` for the daemon and the CLI;
  :mod:`aiops.notify.probe` — ``send_test`` for ``aiops notify --test``.
- :mod:`aiops.notify.outbox` — the SQLite outbox: retries with backoff, retry budget, fallback,
  crash recovery.
- :mod:`aiops.notify.formatting` — one digest rendered as DingTalk markdown, text and HTML.
- :mod:`aiops.notify.ratelimit` — the per-robot token bucket.
- Channels: :mod:`~aiops.notify.console`, :mod:`~aiops.notify.dingtalk`, :mod:`~aiops.notify.email`,
  :mod:`~aiops.notify.alertmanager` (also the v2 client whose ``is_silenced`` gates actions).
- Alertmanager in: :mod:`aiops.notify.webhook` (the HTTP handler's logic) and
  :mod:`aiops.notify.inbound` (the inbox whose ``findings(now)`` feeds detect).
"""
