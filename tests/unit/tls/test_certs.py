"""The dev CA and its leaves (self-signed), and what we check of a provided certificate."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from wsgistack.tls.certs import covers, ensure_self_signed, key_matches, read_chain, read_key, trust_instructions

NAMES = ("localhost", "127.0.0.1", "[::1]", "*.dev.test")


def test_self_signed_makes_a_ca_once_and_a_leaf_for_every_name(tmp_path: Path) -> None:
    leaf = ensure_self_signed(tmp_path, NAMES, tmp_path / "leaf")
    assert leaf.ca_created
    chain = read_chain(leaf.cert)
    ca = x509.load_pem_x509_certificate(leaf.ca.read_bytes())
    assert chain[0].issuer == ca.subject and chain[1] == ca
    assert all(covers(chain[0], n) for n in ("localhost", "127.0.0.1", "[::1]", "a.dev.test"))
    assert not covers(chain[0], "example.com")
    assert key_matches(chain[0], read_key(leaf.key))
    assert oct(leaf.key.stat().st_mode & 0o777) == "0o600"
    # The leaf is verifiable with the CA (what a client that trusts it does).
    ca.public_key().verify(chain[0].signature, chain[0].tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))

    again = ensure_self_signed(tmp_path, NAMES, tmp_path / "leaf")
    assert not again.ca_created
    assert read_chain(again.cert)[0].serial_number == chain[0].serial_number  # reused

    # New names: a new leaf from the same CA (trusted once, trusted for every project).
    other = ensure_self_signed(tmp_path, ("myapp.test",), tmp_path / "leaf")
    assert not other.ca_created
    assert covers(read_chain(other.cert)[0], "myapp.test")
    assert read_chain(other.cert)[0].issuer == ca.subject


def test_trust_instructions_name_the_ca_file(tmp_path: Path) -> None:
    text = trust_instructions(tmp_path / "ca.pem")
    assert "update-ca-certificates" in text and str(tmp_path / "ca.pem") in text


def test_wildcard_certificate_covers_one_level(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("*.example.com")]), critical=False)
            .sign(key, hashes.SHA256()))
    assert covers(cert, "www.example.com")
    assert not covers(cert, "example.com") and not covers(cert, "a.b.example.com")
    other = ec.generate_private_key(ec.SECP256R1())
    assert not key_matches(cert, other)
    pem = other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / "k.pem").write_bytes(pem)
    assert not key_matches(cert, read_key(tmp_path / "k.pem"))
