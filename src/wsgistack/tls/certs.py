"""Certificates: read and check the ones we are given, make the local dev CA and its leaves.

Built on ``cryptography`` (imported here only: planning and rendering never need it). The
self-signed mode is a small private CA, like mkcert's: the CA is made once per data dir and
reused, so trusting it once (docs/tls.md) makes every later dev certificate trusted too; the
leaf is remade when the served names change or it nears its end.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from wsgistack import hosts
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
# Under the 398 days browsers accept from public CAs, and sslyze's Mozilla check caps a
# certificate's lifespan (366 days for "intermediate"), so a dev leaf passes it too.
LEAF_DAYS = 365
LEAF_RENEW_BEFORE = dt.timedelta(days=30)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CertProblem(Exception):
    """A certificate or key we cannot use, with the check id it maps to (checks/tls.py)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # missing | unreadable | invalid | mismatch
        self.message = message


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CertProblem("missing", f"{path} does not exist") from None
    except PermissionError:
        raise CertProblem("unreadable", f"{path} is not readable by uid {os.geteuid()}") from None
    except OSError as exc:
        raise CertProblem("unreadable", f"{path}: {exc.strerror}") from None


def read_chain(path: Path) -> list[x509.Certificate]:
    data = _read(path)
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise CertProblem("invalid", f"{path} holds no PEM certificate") from None
    return chain


def read_key(path: Path) -> object:
    data = _read(path)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise CertProblem("invalid", f"{path} holds no unencrypted PEM private key ({exc})") from None


def key_matches(cert: x509.Certificate, key: object) -> bool:
    public = key.public_key()  # type: ignore[attr-defined]
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(public.public_bytes(*der) == cert.public_key().public_bytes(*der))


def san_names(cert: x509.Certificate) -> tuple[list[str], list[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return [n.lower() for n in san.get_values_for_type(x509.DNSName)], list(san.get_values_for_type(x509.IPAddress))


def covers(cert: x509.Certificate, name: str) -> bool:
    """Does the certificate's SAN cover this server name (as a browser would match it)?"""
    dns, ips = san_names(cert)
    try:
        return ipaddress.ip_address(hosts.bare(name)) in ips
    except ValueError:
        pass
    name = name.lower().rstrip(".")
    if name in dns:
        return True
    if name.startswith("*."):  # a wildcard server_name needs a wildcard certificate
        return False
    head, _, rest = name.partition(".")
    return bool(rest) and f"*.{rest}" in dns


@dataclass(frozen=True)
class Leaf:
    cert: Path
    key: Path
    ca: Path
    ca_created: bool  # first use of this data dir: say how to trust the CA (once)


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _ensure_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, bool]:
    cert_path, key_path = directory / "ca.pem", directory / "ca-key.pem"
    if cert_path.is_file() and key_path.is_file():
        ca = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if ca.not_valid_after_utc - utcnow() > dt.timedelta(days=LEAF_DAYS + 1) and isinstance(key, ec.EllipticCurvePrivateKey):
            return ca, key, False
    key = ec.generate_private_key(ec.SECP256R1())
    now = utcnow()
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wsgistack development CA"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"wsgistack dev CA {os.uname().nodename} {now:%Y-%m-%d}"),
    ])
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(key_path, _pem_key(key), 0o600)
    _write(cert_path, ca.public_bytes(serialization.Encoding.PEM), 0o644)
    return ca, key, True


def _san(names: Iterable[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(hosts.bare(name))))
        except ValueError:
            out.append(x509.DNSName(name.lower()))
    return out


def ensure_self_signed(data_dir: Path, names: tuple[str, ...], leaf_dir: Path) -> Leaf:
    """The dev CA in ``data_dir/dev-ca`` (made once) and a leaf for ``names`` in
    ``leaf_dir``, remade when its names differ or it is within 30 days of its end."""
    ca_dir = data_dir / "dev-ca"
    ca, ca_key, created = _ensure_ca(ca_dir)
    cert_path, key_path = leaf_dir / "cert.pem", leaf_dir / "key.pem"
    if not created and cert_path.is_file() and key_path.is_file():
        try:
            chain = read_chain(cert_path)
            leaf = chain[0]
            fresh = leaf.not_valid_after_utc - utcnow() > LEAF_RENEW_BEFORE
            if fresh and leaf.issuer == ca.subject and all(covers(leaf, n) for n in names):
                return Leaf(cert_path, key_path, ca_dir / "ca.pem", False)
        except CertProblem:
            pass
    key = ec.generate_private_key(ec.SECP256R1())
    now = utcnow()
    first = next((n for n in names if not n.startswith("*")), names[0])
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts.bare(first))]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
        .add_extension(x509.SubjectAlternativeName(_san(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(key_path, _pem_key(key), 0o600)
    # The chain nginx sends: the leaf, then the CA (a client that trusts the CA needs only
    # the leaf, but sending it costs nothing and lets tools show the whole path).
    _write(cert_path, leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM), 0o644)
    return Leaf(cert_path, key_path, ca_dir / "ca.pem", created)


def trust_instructions(ca: Path) -> str:
    """How to make this machine's clients trust the dev CA (docs/tls.md says more)."""
    return (
        f"the dev CA is {ca}; trust it once, e.g. Debian/Ubuntu: sudo cp {ca} /usr/local/share/ca-certificates/"
        f"wsgistack-dev-ca.crt && sudo update-ca-certificates; macOS: sudo security add-trusted-cert -d -r trustRoot "
        f"-k /Library/Keychains/System.keychain {ca}; Firefox: Settings > Certificates > Import; "
        f"curl/Python: --cacert {ca} / SSL_CERT_FILE={ca}"
    )


def throwaway_certificate(directory: Path, names: tuple[str, ...]) -> tuple[Path, Path]:
    """A self-signed certificate for ``names`` in ``directory`` (a check's sandbox), standing
    in for the dev certificate a start would make: ``nginx -t`` needs one to exist."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = utcnow()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wsgistack doctor")])
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(_san(names)), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    _write(key_path, _pem_key(key), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path
