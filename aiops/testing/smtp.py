"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for tests and demos.

aiosmtpd's ``Controller`` cannot take ``port=0`` (it connects to the port itself to check the
server is up), so a free port is picked first. With ``tls=True`` the server offers STARTTLS with
a throw-away self-signed certificate whose CA file is :attr:`SmtpServer.ca_file`; with
``implicit_tls=True`` it speaks SMTPS (TLS from the first byte) instead.
"""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    tls: bool
    authenticated_as: str | None


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.server.reject_with:
            return self.server.reject_with
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        # session.ssl covers STARTTLS; an implicit-TLS connection shows only on the transport.
        tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        auth = session.auth_data.login.decode() if getattr(session, "auth_data", None) is not None else None
        with self.server._lock:
            self.server.received.append(
                Received(envelope.mail_from, tuple(envelope.rcpt_tos), msg, tls, auth)
            )
        return "250 Message accepted for delivery"


class SmtpServer:
    def __init__(self, *, tls: bool = False, implicit_tls: bool = False, username: str | None = None,
                 password: str | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = free_port(host)
        self.received: list[Received] = []
        # Set to an SMTP reply ("451 try later", "550 no such user") to reject DATA.
        self.reject_with: str = ""
        self._lock = threading.Lock()
        self._tmp = tempfile.TemporaryDirectory(prefix="aiops-smtp-")
        self.ca_file: Path | None = None
        kwargs: dict[str, Any] = {}
        if tls or implicit_tls:
            from aiops.testing.tls import self_signed_cert  # cryptography only when TLS is asked for

            cert = self_signed_cert(Path(self._tmp.name), host, days=1)
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(cert.cert_file, cert.key_file)
            self.ca_file = cert.cert_file
            if implicit_tls:  # SMTPS (port 465 style): TLS from the first byte
                kwargs.update(ssl_context=ctx)
            else:
                kwargs.update(tls_context=ctx, require_starttls=True)
        if username is not None:
            def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
                ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == username and auth_data.password.decode() == password
                return AuthResult(success=ok, handled=False, auth_data=auth_data)

            # aiosmtpd does not count implicit TLS as TLS for AUTH, so only STARTTLS can require it.
            kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=not implicit_tls)
        self.controller = Controller(_Handler(self), hostname=host, port=self.port, **kwargs)

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return [r.message for r in self.received]

    def start(self) -> Self:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
        self._tmp.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
