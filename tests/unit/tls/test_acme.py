"""The certbot command line, the CA's message out of certbot's output, and when to renew."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from wsgistack.contracts import RenewerSettings
from wsgistack.tls.acme import Settings, ca_message, certbot_argv, renewal_time
from wsgistack.tls.certs import ensure_self_signed


def settings(tmp_path: Path, **changes: object) -> Settings:
    data = {"names": ["example.com", "www.example.com"], "cert": str(tmp_path / "c.pem"), "key": str(tmp_path / "k.pem"),
            "config_dir": str(tmp_path / "acme"), "webroot": str(tmp_path / "www"),
            # nothing listens here: ARI cannot be asked, so the fallback applies
            "directory": "https://127.0.0.1:9/dir", "email": "ops@example.com", "ca_bundle": "",
            "challenge_port": 80, "certbot": "/usr/bin/certbot", "nginx_pid": "/run/ws/nginx.pid",
            "nginx_conf": "/run/ws/nginx.conf", "nginx_https_conf": "/run/ws/nginx-https.conf", **changes}
    return Settings.from_contract(RenewerSettings.from_json({"version": 1, **data}))


def test_certbot_argv(tmp_path: Path) -> None:
    argv = certbot_argv(settings(tmp_path), force=False)
    assert argv[:2] == ["/usr/bin/certbot", "certonly"]
    assert "--webroot" in argv and argv[argv.index("--webroot-path") + 1] == str(tmp_path / "www")
    assert argv[argv.index("--cert-name") + 1] == "example.com"
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-d"] == ["example.com", "www.example.com"]
    assert argv[argv.index("--config-dir") + 1] == str(tmp_path / "acme")
    assert "--keep-until-expiring" in argv and "--email" in argv
    anonymous = certbot_argv(settings(tmp_path, email=""), force=True)
    assert "--register-unsafely-without-email" in anonymous and "--force-renewal" in anonymous


def test_the_cas_message_is_kept_and_certbots_boilerplate_dropped() -> None:
    output = """Saving debug log to /x/letsencrypt.log
Requesting a certificate for localhost

Certbot failed to authenticate some domains (authenticator: webroot). The Certificate Authority reported these problems:
  Domain: localhost
  Type:   connection
  Detail: 127.0.0.1: Fetching http://localhost:5002/.well-known/acme-challenge/abc: Connection refused

Hint: The Certificate Authority failed to download the temporary challenge files created by Certbot.

Some challenges have failed.
Ask for help or search for solutions at https://community.letsencrypt.org. See the logfile /x for more details.
"""
    assert ca_message(output) == (
        "Domain: localhost\nType:   connection\n"
        "Detail: 127.0.0.1: Fetching http://localhost:5002/.well-known/acme-challenge/abc: Connection refused"
    )
    unexpected = "An unexpected error occurred:\nError creating new account :: too many registrations\nAsk for help\n"
    assert ca_message(unexpected) == "Error creating new account :: too many registrations"
    assert ca_message("") == "certbot gave no reason"


def test_renewal_at_two_thirds_without_ari(tmp_path: Path) -> None:
    leaf = ensure_self_signed(tmp_path / "ca", ("example.com",), tmp_path / "leaf")
    from cryptography import x509

    cert = x509.load_pem_x509_certificates(leaf.cert.read_bytes())[0]
    when, why = renewal_time(leaf.cert.read_bytes(), settings(tmp_path))
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert why == "two thirds of its lifetime"
    assert abs(when - (cert.not_valid_before_utc + life * 2 / 3)) < dt.timedelta(seconds=1)


def test_acme_without_certbot_refuses_to_start() -> None:
    import pytest

    from wsgistack.config import load_config
    from wsgistack.errors import MissingBinaryError
    from wsgistack.machine import Machine
    from wsgistack.start import check_binaries
    from wsgistack.plan.stack import make_plan

    machine = Machine(cpus=2, memory_limit=None, somaxconn=4096, euid=1000, nginx="/usr/sbin/nginx",
                      python="/usr/bin/python3", certbot=None)
    env = {"WSGISTACK_ROLE": "web", "UWSGI_URI": "127.0.0.1:8001", "WSGISTACK_TLS__MODE": "acme"}
    plan = make_plan(load_config(Path("/srv/app"), env=env), machine, None)
    with pytest.raises(MissingBinaryError) as exc:
        check_binaries(plan)
    assert exc.value.id == "tls.E003" and "wsgistack[acme]" in exc.value.hint
    with_certbot = dataclasses.replace(machine, certbot="/usr/bin/certbot")
    check_binaries(make_plan(load_config(Path("/srv/app"), env=env), with_certbot, None))  # no error
