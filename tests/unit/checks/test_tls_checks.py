"""tls.*: a provided certificate is checked before nginx starts (tls.mode = files)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.unit.checks.conftest import MakeCtx, ids
from wsgistack.checks import tls


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def make_cert(directory: Path, names: tuple[str, ...] = ("localhost",), days: float = 90, start_days: float = -1) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + dt.timedelta(days=start_days)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(_pem_key(key))
    return directory / "cert.pem", directory / "key.pem"


def files_env(cert: Path, key: Path, names: str = "localhost") -> dict[str, str]:
    return {"WSGISTACK_TLS__MODE": "files", "WSGISTACK_TLS__CERT": str(cert), "WSGISTACK_TLS__KEY": str(key),
            "WSGISTACK_SERVER__SERVER_NAMES": names}


def test_a_good_certificate_passes(make_ctx: MakeCtx, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, ("localhost", "www.example.com"))
    assert list(tls.certificate_usable(make_ctx(files_env(cert, key, "localhost www.example.com")))) == []


def test_tls_off_checks_nothing(make_ctx: MakeCtx) -> None:
    assert list(tls.certificate_usable(make_ctx())) == []


def test_missing_certificate_file(make_ctx: MakeCtx, tmp_path: Path) -> None:
    found = list(tls.certificate_usable(make_ctx(files_env(tmp_path / "nope.pem", tmp_path / "nope.key"))))
    assert ids(found) == ["tls.E101"]
    assert "nope.pem does not exist" in found[0].message
    assert "WSGISTACK_TLS__CERT" in found[0].obj


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_key(make_ctx: MakeCtx, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    key.chmod(0)
    assert ids(tls.certificate_usable(make_ctx(files_env(cert, key)))) == ["tls.E102"]


def test_key_of_another_certificate(make_ctx: MakeCtx, tmp_path: Path) -> None:
    cert, _ = make_cert(tmp_path / "a")
    _, other_key = make_cert(tmp_path / "b")
    found = list(tls.certificate_usable(make_ctx(files_env(cert, other_key))))
    assert ids(found) == ["tls.E103"]
    assert "is not the key of" in found[0].message


def test_key_file_holding_no_key(make_ctx: MakeCtx, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    key.write_text("not a key\n")
    assert ids(tls.certificate_usable(make_ctx(files_env(cert, key)))) == ["tls.E102"]


def test_names_not_covered(make_ctx: MakeCtx, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, ("example.com",))
    found = list(tls.certificate_usable(make_ctx(files_env(cert, key, "example.com www.example.com"))))
    assert ids(found) == ["tls.E104"]
    assert "covers example.com, not www.example.com" in found[0].message


def test_expired_certificate(make_ctx: MakeCtx, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, days=-1, start_days=-30)
    assert ids(tls.certificate_usable(make_ctx(files_env(cert, key)))) == ["tls.E105"]


def test_expiry_within_14_days_is_a_warning(make_ctx: MakeCtx, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, days=10)
    found = list(tls.certificate_usable(make_ctx(files_env(cert, key))))
    assert ids(found) == ["tls.W106"]
    assert "in 9 days" in found[0].message or "in 10 days" in found[0].message
