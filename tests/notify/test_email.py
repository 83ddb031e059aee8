"""Email through a real SMTP server (aiosmtpd) on loopback: headers, both bodies, digests, TLS, auth."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aiops.model import Severity
from aiops.notify.email import EmailNotifier
from aiops.notify.build import build_notifications
from aiops.plugins import DeliveryStatus
from aiops.testing.smtp import SmtpServer, free_port

from .conftest import finding, pod


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def plain(server: SmtpServer, **params: object) -> EmailNotifier:
    base = {"host": "127.0.0.1", "port": server.port, "security": "none", "from": "aiops@example.com",
            "to": ["oncall@example.com", "sre@example.com"], "timeout": "2s"}
    return EmailNotifier(**{**base, **params})


def test_digest_mail_has_headers_and_the_same_content_in_text_and_html(smtp: SmtpServer) -> None:
    ns = build_notifications([finding(pod(f"llama-{i}")) for i in range(3)] + [finding(pod("w"), severity=Severity.WARNING, score=0.8)],
                             [], cycle_id="cyc-9", min_severity=Severity.WARNING)
    d = plain(smtp).send_batch(ns, batch_id="b123")
    assert d.status is DeliveryStatus.DELIVERED, d.detail
    [rcv] = smtp.received
    assert rcv.mail_from == "aiops@example.com"
    assert rcv.rcpt_tos == ("oncall@example.com", "sre@example.com")
    msg = rcv.message
    assert msg["Subject"].startswith("[aiops] [CRITICAL] 4 firing: pod/ml/llama-0")
    assert msg["Message-ID"] == "<aiops.b123@example.com>"
    assert msg["Date"] and msg["X-Aiops-Severity"] == "critical" and msg["X-Priority"] == "1"
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for i in range(3):  # one mail for the whole digest, every finding in both bodies
        assert f"pod/ml/llama-{i}" in text and f"pod/ml/llama-{i}" in html
    for fact in ("score 0.95", "in 42m", "cycle cyc-9", "0.71 → 0.91"):
        assert fact in text and fact in html
    assert "<table>" in html


def test_starttls_is_required_when_configured(smtp: SmtpServer) -> None:
    d = plain(smtp, security="starttls").send(build_notifications([finding()], [], cycle_id="c", min_severity=Severity.INFO))
    assert d.status is DeliveryStatus.GIVE_UP and "does not offer STARTTLS" in d.detail
    assert smtp.received == []


def test_starttls_with_auth_from_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret")
    with SmtpServer(tls=True, username="aiops", password="s3cret") as server:
        n = plain(server, security="starttls", username="aiops", password={"env": "SMTP_PASSWORD"}, ca_file=str(server.ca_file))
        d = n.send(build_notifications([finding()], [], cycle_id="c", min_severity=Severity.INFO))
        assert d.status is DeliveryStatus.DELIVERED, d.detail
        [rcv] = server.received
        assert rcv.tls and rcv.authenticated_as == "aiops"
        monkeypatch.setenv("SMTP_PASSWORD", "wrong")
        bad = plain(server, security="starttls", username="aiops", password={"env": "SMTP_PASSWORD"}, ca_file=str(server.ca_file))
        d = bad.send(build_notifications([finding()], [], cycle_id="c", min_severity=Severity.INFO))
        assert d.status is DeliveryStatus.GIVE_UP and "rejected the login" in d.detail and "wrong" not in d.detail
        untrusted = plain(server, security="starttls", username="aiops", password={"env": "SMTP_PASSWORD"})
        d = untrusted.send(build_notifications([finding()], [], cycle_id="c", min_severity=Severity.INFO))
        assert d.status is DeliveryStatus.GIVE_UP and "not trusted" in d.detail


@pytest.mark.parametrize(("reply", "status"), [("451 4.3.0 try again later", DeliveryStatus.RETRY),
                                                ("554 5.7.1 rejected", DeliveryStatus.GIVE_UP)])
def test_server_rejections_are_sorted_temporary_or_permanent(smtp: SmtpServer, reply: str, status: DeliveryStatus) -> None:
    smtp.reject_with = reply
    d = plain(smtp).send(build_notifications([finding()], [], cycle_id="c", min_severity=Severity.INFO))
    assert d.status is status and reply[:3] in d.detail


def test_server_down_is_retried() -> None:
    n = EmailNotifier(host="127.0.0.1", port=free_port(), security="none", to=["a@example.com"], timeout="1s",
                      **{"from": "aiops@example.com"})
    d = n.send(build_notifications([finding()], [], cycle_id="c", min_severity=Severity.INFO))
    assert d.status is DeliveryStatus.RETRY and "ConnectionRefusedError" in d.detail


def test_params_refuse_auth_in_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "x")
    with pytest.raises(ValueError, match="refusing SMTP auth without TLS"):
        EmailNotifier(host="h", security="none", username="u", password={"env": "SMTP_PASSWORD"}, to=["a@b.c"],
                      **{"from": "x@y.z"})
    with pytest.raises(ValueError, match="to"):
        EmailNotifier(host="h", to=[], **{"from": "x@y.z"})


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # aiosmtpd does not see implicit TLS
def test_smtps_implicit_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret")
    with SmtpServer(implicit_tls=True, username="aiops", password="s3cret") as server:
        n = plain(server, security="ssl", username="aiops", password={"env": "SMTP_PASSWORD"}, ca_file=str(server.ca_file))
        d = n.send(build_notifications([finding()], [], cycle_id="c", min_severity=Severity.INFO))
        assert d.status is DeliveryStatus.DELIVERED, d.detail
        assert server.received[0].tls and server.received[0].authenticated_as == "aiops"


def test_line_breaks_in_label_values_never_reach_a_header(smtp: SmtpServer) -> None:
    from aiops.model import Entity

    evil = Entity("pod", "p\r\nBcc: victim@example.com", "ml")
    d = plain(smtp).send(build_notifications([finding(evil)], [], cycle_id="c", min_severity=Severity.INFO))
    assert d.status is DeliveryStatus.DELIVERED, d.detail
    [rcv] = smtp.received
    assert rcv.message["Bcc"] is None and "\n" not in rcv.message["Subject"]
    assert rcv.rcpt_tos == ("oncall@example.com", "sre@example.com")
