"""Run a real Prometheus (and promtool) from tests, benchmarks and ``aiops demo``.

Nothing here fakes Prometheus: :class:`PrometheusServer` starts the Debian ``prometheus`` binary
on a free loopback port with an empty scrape config, after backfilling OpenMetrics files into its
TSDB with ``promtool tsdb create-blocks-from openmetrics``. The retention defaults to ten years
because Prometheus deletes backfilled blocks older than the retention window at start.

    with PrometheusServer(openmetrics=path) as prom:
        requests.get(f"{prom.url}/api/v1/query", params={"query": "up"})
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import requests
import yaml

from aiops.errors import PermanentError, TemporaryError

__all__ = [
    "BackfillError",
    "ManagedServer",
    "MissingBinary",
    "PrometheusServer",
    "ServerStartError",
    "backfill",
    "find_binary",
    "free_port",
    "history_paths",
]

# Debian package that ships each binary, for the "how to fix" part of MissingBinary.
_PACKAGES: dict[str, str] = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "victoria-metrics": "victoria-metrics",
}
# Upstream tarballs name the Alertmanager binary "alertmanager"; Debian renames it.
_ALIASES: dict[str, tuple[str, ...]] = {
    "prometheus-alertmanager": ("prometheus-alertmanager", "alertmanager"),
    "alertmanager": ("alertmanager", "prometheus-alertmanager"),
}


class MissingBinary(PermanentError, RuntimeError):
    """A required executable is not on PATH; the message says which package to install."""

    def __init__(self, name: str) -> None:
        self.name = name
        package = _PACKAGES.get(name, name)
        super().__init__(
            f"{name!r} was not found on PATH. Install it with `apt-get install {package}` "
            f"(Debian/Ubuntu) or put the upstream binary on PATH."
        )


class BackfillError(PermanentError, RuntimeError):
    """promtool refused an OpenMetrics file; the message carries promtool's own words."""


class ServerStartError(TemporaryError, RuntimeError):
    """A launched server exited or did not become ready in time; carries the log tail."""


def find_binary(name: str) -> str:
    """Absolute path of ``name`` on PATH, or :class:`MissingBinary` naming the Debian package."""
    for candidate in _ALIASES.get(name, (name,)):
        path = shutil.which(candidate)
        if path:
            return path
    raise MissingBinary(name)


def history_paths(openmetrics: Path | Sequence[Path]) -> tuple[Path, ...]:
    """A launcher's ``openmetrics`` argument (one file or several) as a tuple of paths."""
    return (Path(openmetrics),) if isinstance(openmetrics, (str, os.PathLike)) else tuple(map(Path, openmetrics))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def backfill(openmetrics_path: str | Path, tsdb_dir: str | Path, *, max_block_duration: str = "54h") -> None:
    """Write the samples of an OpenMetrics file (ending in ``# EOF``) as TSDB blocks.

    promtool re-reads the whole input once per block, so a long ``max_block_duration`` (promtool
    rounds it down to 2h·3^k) keeps a 24 h file to one or two passes instead of twelve.
    """
    source = Path(openmetrics_path)
    if not source.is_file():
        raise BackfillError(f"cannot backfill {source}: no such file")
    target = Path(tsdb_dir)
    target.mkdir(parents=True, exist_ok=True)
    cmd = [
        find_binary("promtool"),
        "tsdb",
        "create-blocks-from",
        "openmetrics",
        "--quiet",
        f"--max-block-duration={max_block_duration}",
        str(source),
        str(target),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = _tail(proc.stderr or proc.stdout, 20)
        raise BackfillError(
            f"promtool could not backfill {source} (exit {proc.returncode}). The file must be OpenMetrics "
            f"text ending in '# EOF', with each metric family's samples together:\n{detail}"
        )


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class ManagedServer:
    """A child process serving HTTP on a loopback port, with start/stop/restart/kill.

    Subclasses provide :meth:`_command` and :attr:`ready_path`. The port is chosen at the first
    start and kept across restarts, so clients holding :attr:`url` reconnect to the same place.
    """

    ready_path = "/-/ready"
    binary = ""

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 30.0,
    ) -> None:
        self._owns_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.port = port
        self.extra_args = tuple(extra_args)
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    # --- lifecycle ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError(f"{type(self).__name__} has not been started; call start() first")
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        assert self.data_dir is not None
        return self.data_dir / f"{self.binary}.log"

    def start(self) -> Self:
        if self.running:
            return self
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix=f"aiops-{self.binary}-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_port()
        self._prepare()
        cmd = self._command()
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _reap
        self._log_file = log
        self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            self._wait_ready()
        except BaseException:
            self._terminate(signal.SIGKILL)
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGTERM, then SIGKILL after ``timeout``); remove a temp data dir."""
        self._terminate(signal.SIGTERM, timeout)
        if self._owns_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def kill(self) -> None:
        """SIGKILL the server, keeping its data, as an outage would (fault tests)."""
        self._terminate(signal.SIGKILL)

    def restart(self) -> Self:
        """Stop gracefully and start again on the same port with the same data."""
        self._terminate(signal.SIGTERM)
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __del__(self) -> None:
        # A forgotten server must not outlive the test process.
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()

    # --- internals --------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Write config files into :attr:`data_dir` before the process starts."""

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise ServerStartError(
                    f"{self.binary} exited with code {code} during start-up. Last log lines:\n{self._log_tail()}"
                )
            try:
                resp = requests.get(self.url + self.ready_path, timeout=1.0)
                if resp.status_code == 200:
                    return
                last_error = f"HTTP {resp.status_code}"
            except requests.RequestException as exc:
                last_error = type(exc).__name__
            time.sleep(0.05)
        raise ServerStartError(
            f"{self.binary} was not ready on {self.url} after {self.startup_timeout:.0f}s ({last_error}); "
            f"raise startup_timeout for large data sets. Last log lines:\n{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 25) -> str:
        try:
            return _tail(self.log_path.read_text(errors="replace"), lines)
        except OSError:
            return "(no log)"

    def _terminate(self, sig: int, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


class PrometheusServer(ManagedServer):
    """A real Prometheus with backfilled history and no scrape targets.

    ``openmetrics`` files are backfilled at the first start only (a restart keeps the TSDB).
    ``rule_files`` are referenced from the generated config, so recording/alerting rules run.
    """

    binary = "prometheus"

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        openmetrics: Path | Sequence[Path] = (),
        rule_files: Sequence[Path] = (),
        port: int | None = None,
        retention: str = "3650d",
        extra_args: Sequence[str] = (),
        scrape_configs: Sequence[dict[str, object]] = (),
        startup_timeout: float = 60.0,
        evaluation_interval: str = "15s",
    ) -> None:
        super().__init__(data_dir, port=port, extra_args=extra_args, startup_timeout=startup_timeout)
        self.evaluation_interval = evaluation_interval
        self.openmetrics = history_paths(openmetrics)
        self.rule_files = tuple(Path(p).resolve() for p in rule_files)
        self.retention = retention
        self.scrape_configs = list(scrape_configs)
        self._backfilled = False

    @property
    def tsdb_dir(self) -> Path:
        assert self.data_dir is not None
        return self.data_dir / "tsdb"

    @property
    def config_path(self) -> Path:
        assert self.data_dir is not None
        return self.data_dir / "prometheus.yml"

    def _prepare(self) -> None:
        config = {
            "global": {"scrape_interval": "15s", "evaluation_interval": self.evaluation_interval},
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": self.scrape_configs,
        }
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        if not self._backfilled:
            for path in self.openmetrics:
                backfill(path, self.tsdb_dir)
            self._backfilled = True

    def _command(self) -> list[str]:
        return [
            find_binary("prometheus"),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.tsdb_dir}",
            f"--storage.tsdb.retention.time={self.retention}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            "--web.enable-admin-api",
            "--log.level=warn",
            *self.extra_args,
        ]
