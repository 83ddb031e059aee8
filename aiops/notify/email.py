"""Email channel: one digest mail per batch, text and HTML alternatives of the same content.

Transport security is explicit: ``ssl`` (implicit TLS, port 465, preferred by RFC 8314) or
``starttls`` (port 587), which refuses to continue when the server does not offer STARTTLS rather
than sending credentials in clear. ``none`` exists for a local relay and tests only.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from aiops.config.base import Duration, Secret, StrictModel
from aiops.model import Notification
from aiops.notify.formatting import digest, to_html, to_text
from aiops.notify.params import parse_params
from aiops.plugins import Delivery, DeliveryStatus, Notifier

_DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "none": 25}


class _NoStartTLS(smtplib.SMTPNotSupportedError):
    """The server did not offer STARTTLS; sending (and logging in) in clear is refused."""


class EmailParams(StrictModel):
    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["ssl", "starttls", "none"] = "starttls"
    username: str | None = None
    password: Secret | None = None
    sender: str = Field(alias="from", min_length=3)
    to: list[str] = Field(min_length=1)
    timeout: Duration = timedelta(seconds=10)
    # A private CA for the SMTP server's certificate; the system store otherwise.
    ca_file: Path | None = None
    subject_prefix: str = "[aiops]"
    max_items: int = Field(default=50, ge=1, le=500)

    @model_validator(mode="after")
    def _auth(self) -> EmailParams:
        if (self.username is None) != (self.password is None):
            raise ValueError("email needs both 'username' and 'password' for SMTP auth, or neither")
        if self.password is not None and self.security == "none":
            raise ValueError("refusing SMTP auth without TLS: set security to 'ssl' or 'starttls'")
        return self


def build_message(batch: Sequence[Notification], *, sender: str, to: Sequence[str], subject_prefix: str = "",
                  max_items: int = 50, message_id: str | None = None) -> EmailMessage:
    d = digest(batch, max_items=max_items)
    msg = EmailMessage()
    # Label values can hold anything; a line break in a header would be an injection.
    msg["Subject"] = " ".join(f"{subject_prefix} {d.title}".split())
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(usegmt=True)
    if message_id:
        msg["Message-ID"] = message_id
    msg["X-Aiops-Severity"] = d.severity.value
    if d.route:
        msg["X-Aiops-Route"] = d.route
    if d.severity.value == "critical":
        msg["X-Priority"] = "1"
    msg.set_content(to_text(d))
    msg.add_alternative(to_html(d), subtype="html")
    return msg


class EmailNotifier(Notifier):
    name: ClassVar[str] = "email"
    # A resend after a crash reuses the batch's Message-ID, which mail systems de-duplicate.
    redeliver_after_crash: ClassVar[bool] = True

    def __init__(self, **params: Any) -> None:
        self.params = parse_params(EmailParams, params)
        self._password = self.params.password.resolve() if self.params.password is not None else None
        self.port = self.params.port or _DEFAULT_PORTS[self.params.security]

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.params.ca_file) if self.params.ca_file else None)

    def _connect(self) -> smtplib.SMTP:
        p = self.params
        timeout = p.timeout.total_seconds()
        if p.security == "ssl":
            return smtplib.SMTP_SSL(p.host, self.port, timeout=timeout, context=self._tls())
        smtp = smtplib.SMTP(p.host, self.port, timeout=timeout)
        try:
            smtp.ehlo()
            if p.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise _NoStartTLS("STARTTLS")
                smtp.starttls(context=self._tls())
                smtp.ehlo()
        except BaseException:
            smtp.close()
            raise
        return smtp

    def message_id(self, batch_id: str) -> str:
        domain = self.params.sender.rpartition("@")[2].strip(">") or "aiops.local"
        return f"<aiops.{batch_id}@{domain}>"

    def send(self, batch: Sequence[Notification]) -> Delivery:
        return self.send_batch(batch, batch_id=None)

    def send_batch(self, batch: Sequence[Notification], *, batch_id: str | None) -> Delivery:
        if not batch:
            return Delivery(DeliveryStatus.DELIVERED, "nothing to send")
        p = self.params
        try:
            msg = build_message(batch, sender=p.sender, to=p.to, subject_prefix=p.subject_prefix, max_items=p.max_items,
                                message_id=self.message_id(batch_id) if batch_id else None)
        except (ValueError, TypeError) as exc:  # retrying would build the same broken message
            return Delivery(DeliveryStatus.GIVE_UP, f"cannot build the mail: {exc}")
        where = f"{p.host}:{self.port}"
        try:
            with self._connect() as smtp:
                if p.username and self._password is not None:
                    smtp.login(p.username, self._password.get_secret_value())
                refused = smtp.send_message(msg)
        except _NoStartTLS:
            return Delivery(DeliveryStatus.GIVE_UP, f"{where} does not offer STARTTLS; refusing to send in clear "
                            "(use security: ssl, or fix the server's TLS)")
        except smtplib.SMTPNotSupportedError as exc:
            return Delivery(DeliveryStatus.GIVE_UP, f"{where} does not support what we asked ({exc}); "
                            "check security, port and whether the server takes SMTP AUTH")
        except smtplib.SMTPAuthenticationError as exc:
            return Delivery(DeliveryStatus.GIVE_UP, f"{where} rejected the login ({exc.smtp_code}); check username and password secret")
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            status = DeliveryStatus.RETRY if all(400 <= c < 500 for c in codes) else DeliveryStatus.GIVE_UP
            return Delivery(status, f"{where} refused all recipients {sorted(exc.recipients)} (codes {codes})")
        except smtplib.SMTPResponseException as exc:
            status = DeliveryStatus.RETRY if 400 <= exc.smtp_code < 500 else DeliveryStatus.GIVE_UP
            reply = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            return Delivery(status, f"{where} answered {exc.smtp_code}: {reply[:200]}")
        except ssl.SSLCertVerificationError as exc:
            return Delivery(DeliveryStatus.GIVE_UP, f"TLS certificate of {where} not trusted ({exc.verify_message}); set ca_file")
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:  # connection refused, reset, timeout
            return Delivery(DeliveryStatus.RETRY, f"cannot deliver to {where}: {type(exc).__name__}: {exc}")
        if refused:
            return Delivery(DeliveryStatus.DELIVERED, f"sent; refused by {sorted(refused)}")
        return Delivery(DeliveryStatus.DELIVERED, f"sent to {len(p.to)} recipient(s)")
