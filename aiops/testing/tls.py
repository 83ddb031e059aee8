"""Throwaway self-signed certificates for the test kit's loopback servers.

kubectl (client-go) sends bearer tokens only over TLS, so the test API server must speak HTTPS to
be driven by the real kubectl; the SMTP receiver offers STARTTLS or SMTPS. Each certificate is
valid for its loopback host and localhost and is its own CA, which the clients (a kubeconfig, the
Python client, the email channel's ``ca_file``) trust explicitly: no ``insecure-skip-tls-verify``.
"""

from __future__ import annotations

import atexit
import datetime as dt
import ipaddress
import shutil
import ssl
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class ServerCertificate:
    cert_file: Path
    key_file: Path

    @property
    def pem(self) -> bytes:
        return self.cert_file.read_bytes()

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def self_signed_cert(directory: Path, host: str = "127.0.0.1", *, days: int = 2) -> ServerCertificate:
    """A certificate for ``host`` (IP and DNS SANs) and its key (mode 0600), written to ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_file.chmod(0o600)
    return ServerCertificate(cert_file, key_file)


@cache
def loopback_certificate() -> ServerCertificate:
    """The test API server's: one per process (key generation is the slow part), in a private temp
    dir removed when the process exits."""
    directory = Path(tempfile.mkdtemp(prefix="aiops-kubeapi-tls-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return self_signed_cert(directory)
