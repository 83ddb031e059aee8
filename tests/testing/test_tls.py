"""The test kit's throwaway certificates: trusted for their loopback host, and never left behind."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

from aiops.testing.tls import self_signed_cert


def test_a_certificate_is_its_own_ca_for_its_loopback_host(tmp_path: Path) -> None:
    cert = self_signed_cert(tmp_path)
    assert cert.key_file.stat().st_mode & 0o777 == 0o600
    client = ssl.create_default_context(cadata=cert.pem.decode())
    assert client.verify_mode == ssl.CERT_REQUIRED
    cert.server_context()  # the key matches the certificate


def test_the_per_process_certificate_directory_is_removed_when_the_process_ends(tmp_path: Path) -> None:
    # Each test process (and each daemon a test starts) makes one; a run of the suite made dozens
    # of directories with a private key in /tmp that nothing removed.
    code = "from aiops.testing.tls import loopback_certificate; print(loopback_certificate().cert_file.parent)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={"TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin"}, check=True)
    made = Path(run.stdout.strip())
    assert made.parent == tmp_path
    assert not made.exists()
