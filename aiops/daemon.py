"""The long-running daemon: cycles on a schedule, the HTTP server, clean shutdown on SIGTERM."""

from __future__ import annotations

import logging
import signal
import ssl
import threading

from apscheduler.schedulers.background import BackgroundScheduler

from aiops import metrics
from aiops.advisor.job import DigestJob
from aiops.config import AiopsConfig, ConfigError, resolve_secret
from aiops.engine.pipeline import Pipeline
from aiops.model import utcnow
from aiops.server import DaemonServer, WebhookHandler

log = logging.getLogger(__name__)


class Daemon:
    def __init__(self, config: AiopsConfig, pipeline: Pipeline, *, webhook: WebhookHandler | None = None) -> None:
        self.config = config
        self.pipeline = pipeline
        self._stop = threading.Event()
        self._learnt_history = False
        self.scheduler = BackgroundScheduler(timezone="UTC")
        interval = config.schedule.interval.total_seconds()
        # One job, never two at once; runs missed while a cycle overran collapse into one.
        self.scheduler.add_job(
            self._cycle,
            "interval",
            seconds=interval,
            id="cycle",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(config.schedule.misfire_grace.total_seconds())),
            next_run_time=utcnow(),
        )
        # The weekly capacity digest runs beside the cycle, never inside it (advice reads a week of
        # history); it is made once a week, so looking every 15 minutes is enough.
        self.digest = DigestJob(config, pipeline.store, pipeline.notifier, is_leader=lambda: pipeline.actor.is_leader)
        if config.advisor.digest.enabled:
            self.scheduler.add_job(
                self._digest, "interval", minutes=15, id="digest", max_instances=1, coalesce=True,
                next_run_time=utcnow(),
            )
        # aiops_ready on /metrics asks the same question as /readyz, at scrape time.
        metrics.READY.watch(self.ready)
        self.server = DaemonServer(
            config.server.host,
            config.server.port,
            ready=self.ready,
            alive=lambda: self.scheduler.running,
            webhook=webhook,
            max_body_bytes=config.server.max_body_bytes,
            read_timeout=config.server.read_timeout.total_seconds(),
            max_connections=config.server.max_connections,
            tls=server_tls(config),
            webhook_port=config.server.webhook_port,
        )

    def ready(self) -> tuple[bool, str]:
        ok, reason = self.pipeline.ready()
        if ok and not self.pipeline.actor.is_leader:
            reason = "ok (follower: detecting, not acting)"
        return ok, reason

    def _cycle(self) -> None:
        try:
            if not self._learnt_history:
                # Once, on the scheduler's thread (start() stays quick; a stop is heard): the days
                # before the first frame that Prometheus holds (Pipeline.learn_history).
                self._learnt_history = True
                self.pipeline.learn_history()
            report = self.pipeline.run_cycle()
        except Exception:  # the scheduler thread must survive anything a cycle does
            log.exception("cycle crashed")
            return
        log.info(
            "cycle finished",
            extra={
                "cycle_id": report.cycle_id,
                "degraded": report.degraded,
                "duration_s": round(report.duration_seconds, 3),
                "series": report.series_count,
                "findings": len(report.findings),
                "decisions": len(report.decisions),
                "errors": [f"{e.stage}: {e.message}" for e in report.errors],
            },
        )

    def _digest(self) -> None:
        try:
            self.digest.run()
        except Exception:  # the scheduler thread must survive anything a job does
            log.exception("digest job crashed")

    def start(self) -> None:
        self.pipeline.start()
        self.server.start()
        self.scheduler.start()
        log.info("aiops started", extra={"port": self.server.port, "mode": self.config.safety.mode.value,
                                         "dry_run": self.config.safety.dry_run})

    def stop(self) -> None:
        self._stop.set()

    def run_forever(self) -> None:
        """Run until SIGTERM/SIGINT; then finish the running cycle and shut down cleanly."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: self.stop())
            signal.signal(signal.SIGINT, lambda *_: self.stop())
        self.start()
        try:
            while not self._stop.wait(0.5):
                pass
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        log.info("aiops stopping")
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        self.server.stop()
        metrics.READY.watch(None)
        self.pipeline.close()
        log.info("aiops stopped")


def webhook_for(config: AiopsConfig, pipeline: Pipeline) -> WebhookHandler | None:
    """The Alertmanager webhook handler, when a token is configured (otherwise the endpoint is off)."""
    if config.server.webhook_token is None:
        return None
    from aiops.notify.inbound import AlertInbox
    from aiops.notify.webhook import make_handler

    inbox = next((s for s in pipeline.extra_findings if isinstance(s, AlertInbox)), None)
    if inbox is None:
        inbox = AlertInbox(pipeline.store)
        pipeline.extra_findings.append(inbox)
    token = resolve_secret(config.server.webhook_token, "server.webhook_token")
    return make_handler(inbox, token, config.server.max_body_bytes)


def server_tls(config: AiopsConfig) -> ssl.SSLContext | None:
    """The listener's TLS context when ``server.tls`` is set (a bad file is a ConfigError that says which)."""
    tls = config.server.tls
    if tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("<server.tls>", [("server.tls", f"cannot load the certificate and key: {exc}")]) from None
    return context
