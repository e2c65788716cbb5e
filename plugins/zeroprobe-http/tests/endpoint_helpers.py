"""Helpers of the http_endpoint tests: specs, one engine run, certificates made by the test."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from zeroprobe_http.spec import HttpEndpointSpec

from zeroprobe.config.loader import ContextFile
from zeroprobe.config.settings import Settings
from zeroprobe.engine.core import Engine
from zeroprobe.engine.store import Result
from zeroprobe.plugin import connection_env_var

LOCALHOST = "127.0.0.1"
#: The repository's example contexts.
REPO_CONTEXTS = Path(__file__).resolve().parents[3] / "contexts"
SERVICE_ID = "test.http.endpoint"
LABEL = "shop"
CONNECTION_VAR = connection_env_var(LABEL)
DAY = dt.timedelta(days=1)
#: What a line must never look like: a traceback, a repr, escaped bytes, a second line.
NOT_PLAIN = re.compile(r"Traceback|File \"|[A-Za-z]Error\(|<[A-Za-z_.]+[ >]|\\x[0-9a-f]{2}|\\n|\n")

SpecFactory = Callable[..., HttpEndpointSpec]


def make_spec_factory() -> SpecFactory:
    """A factory of valid specs: label `shop`, interval 5s, timeout 2s, one GET /."""

    def factory(**overrides: Any) -> HttpEndpointSpec:
        fields: dict[str, Any] = {
            "service_id": SERVICE_ID,
            "kind": "http_endpoint",
            "connection": LABEL,
            "interval": "5s",
            "timeout": "2s",
        }
        fields.update(overrides)
        return HttpEndpointSpec.model_validate(fields)

    return factory


async def run_once(spec: HttpEndpointSpec, environ: dict[str, str]) -> tuple[Result, str]:
    """Run `spec` once in an engine of its own: the result and the /metrics text."""
    contexts = [ContextFile(spec=spec, path=f"{spec.service_id}.yaml", line=1)]
    engine = Engine(contexts, Settings(), environ)
    try:
        result = await engine.run_once(spec.service_id)
        return result, engine.metrics.render().decode()
    finally:
        await engine.stop()


def texts(result: Result) -> list[str]:
    """The lines' texts."""
    return [line.text for line in result.lines]


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1 made by the test, and its files."""

    cert_path: Path
    key_path: Path
    not_after: dt.datetime

    def server_context(self) -> ssl.SSLContext:
        """A server TLS context presenting this certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


def make_certificate(
    folder: Path, *, expires_in: dt.timedelta, name: str = "server"
) -> Certificate:
    """A self-signed certificate for IP 127.0.0.1 expiring `expires_in` from now (negative:
    already expired), valid since 30 days before it expires or now, whichever is earlier.

    It is its own CA (basic constraints CA:TRUE), so a client can trust it through a CA file.
    """
    now = dt.datetime.now(dt.UTC)
    not_after = now + expires_in
    not_before = min(now, not_after) - 30 * DAY
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"zeroprobe test {name}")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOCALHOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    # Whole seconds: what the certificate holds.
    return Certificate(cert_path, key_path, not_after.replace(microsecond=0))
