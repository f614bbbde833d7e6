"""ACME with certbot over nginx's own webroot (HTTP-01), and when to renew.

Why certbot, run as a command, rather than the ``acme`` library it is built on: certbot is
the client Let's Encrypt maintains and most operators already know; it keeps the account
key, the certificates and their history in one directory (``certbot certificates`` and
``certbot revoke`` work on it as usual), handles the CA's quirks (bad nonces, retries,
rate-limit messages) and writes certificate files atomically behind ``live/`` symlinks.
Driving the ``acme`` library directly would mean re-writing that state handling here.
The renewal *schedule* is ours (certbot's own is a fixed 30 days before expiry): the CA's
suggestion over ARI when the installed ``acme`` library can ask for it, else two thirds of
the certificate's lifetime.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from wsgistack import ids
from wsgistack.contracts import RenewerSettings, Trust
from wsgistack.errors import WsgistackError

CERTBOT_TIMEOUT = 600

ACME_FAILED = ids.TLS_E001
CHALLENGE_UNREACHABLE = ids.TLS_E002
NO_CLIENT = ids.TLS_E003

# certbot lines that are about certbot, not about what went wrong.
_NOISE = (
    "Saving debug log", "Ask for help", "See the logfile", "Requesting a certificate", "Account registered",
    "Hint:", "- - - -", "Some challenges have failed",
)


@dataclass(frozen=True)
class Settings:
    """The renewer's settings (contracts.RenewerSettings, from render.stack.renewer_settings), with paths as Paths."""

    names: tuple[str, ...]
    cert: Path
    key: Path
    config_dir: Path
    webroot: Path
    directory: str
    email: str
    ca_bundle: str
    challenge_port: int
    certbot: str
    nginx_pid: Path
    nginx_conf: Path
    nginx_https_conf: Path

    @classmethod
    def from_contract(cls, data: RenewerSettings) -> Settings:
        paths = ("cert", "key", "config_dir", "webroot", "nginx_pid", "nginx_conf", "nginx_https_conf")
        return cls(**{k: Path(getattr(data, k)) if k in paths else getattr(data, k) for k in cls.__dataclass_fields__})

    @classmethod
    def load(cls, path: Path) -> Settings:
        """The settings file the start wrote (contracts.RenewerSettings: ours, private), read at
        start and again on SIGHUP."""
        return cls.from_contract(RenewerSettings.read(path, Trust.me(private=True)))


def certbot_argv(s: Settings, *, force: bool) -> list[str]:
    argv = [
        s.certbot, "certonly", "--non-interactive", "--agree-tos",
        "--webroot", "--webroot-path", str(s.webroot),
        "--cert-name", s.names[0], *[arg for n in s.names for arg in ("-d", n)],
        "--server", s.directory,
        "--config-dir", str(s.config_dir), "--work-dir", str(s.config_dir / "work"), "--logs-dir", str(s.config_dir / "logs"),
        "--key-type", "ecdsa",
    ]
    argv += ["--email", s.email, "--no-eff-email"] if s.email else ["--register-unsafely-without-email"]
    argv.append("--force-renewal" if force else "--keep-until-expiring")
    return argv


def ca_message(output: str) -> str:
    """What the CA (or certbot) said went wrong, without certbot's boilerplate."""
    lines = [ln.rstrip() for ln in output.splitlines() if ln.strip()]
    for marker in ("The Certificate Authority reported these problems:", "An unexpected error occurred:"):
        for i, line in enumerate(lines):
            if marker in line:
                tail = [ln for ln in lines[i + 1 :] if not ln.strip().startswith(_NOISE)]
                return "\n".join(ln.strip() for ln in tail[:12])
    useful = [ln.strip() for ln in lines if not ln.strip().startswith(_NOISE)]
    return "\n".join(useful[-8:]) or "certbot gave no reason"


def probe_challenge_port(s: Settings, timeout: float = 5.0) -> str | None:
    """Fetch a file through the URL the CA uses (http://NAME:challenge_port/.well-known/...);
    None when every name serves it, else what went wrong for the first name that does not."""
    directory = s.webroot / ".well-known" / "acme-challenge"
    directory.mkdir(parents=True, exist_ok=True)
    token = "wsgistack-probe-" + secrets.token_urlsafe(12)
    path = directory / token
    path.write_text(token)
    path.chmod(0o644)
    try:
        for name in s.names:
            port = "" if s.challenge_port == 80 else f":{s.challenge_port}"
            url = f"http://{name}{port}/.well-known/acme-challenge/{token}"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - http only, our own name
                    body = resp.read(200).decode(errors="replace")
            except urllib.error.HTTPError as exc:
                return f"{url} answered {exc.code}: the CA's request does not reach this nginx"
            except OSError as exc:
                return f"{url}: {getattr(exc, 'reason', exc)}"
            if body != token:
                return f"{url} answered with something else: another server answers on that port"
    finally:
        path.unlink(missing_ok=True)
    return None


def obtain(s: Settings, *, force: bool, env: Mapping[str, str], should_stop: Callable[[], bool]) -> None:
    """Run certbot once; raise WsgistackError (tls.E001/E002/E003) when no certificate came of it."""
    child_env = dict(env)
    if s.ca_bundle:
        child_env["REQUESTS_CA_BUNDLE"] = s.ca_bundle  # certbot's HTTP client (requests) honours it
    s.webroot.mkdir(parents=True, exist_ok=True)
    os.chmod(s.webroot, 0o755)
    try:
        proc = subprocess.Popen(certbot_argv(s, force=force), env=child_env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except OSError as exc:
        raise WsgistackError(
            NO_CLIENT, f"cannot run the ACME client {s.certbot!r}: {exc.strerror}",
            "install it next to wsgistack: pip install 'wsgistack[acme]' (or apt-get install certbot)",
        ) from None
    deadline = dt.datetime.now() + dt.timedelta(seconds=CERTBOT_TIMEOUT)
    while True:
        try:
            output, _ = proc.communicate(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            if should_stop() or dt.datetime.now() > deadline:
                proc.terminate()
                output, _ = proc.communicate()
                if should_stop():
                    return
                break
    if proc.returncode == 0 and s.cert.is_file():
        return
    message = ca_message(output or "")
    unreachable = probe_challenge_port(s)
    if unreachable:
        raise WsgistackError(
            CHALLENGE_UNREACHABLE,
            f"port {s.challenge_port} of {', '.join(s.names)} does not reach this nginx, so the CA cannot fetch "
            f"the HTTP-01 challenge: {unreachable}",
            f"point the names' DNS at this machine and forward port {s.challenge_port} to server.port (docker -p "
            f"{s.challenge_port}:PORT, a firewall or balancer rule); tls.challenge_port is the port the CA uses",
            details=f"the CA said:\n{message}",
        )
    raise WsgistackError(
        ACME_FAILED,
        f"the ACME server {s.directory} refused a certificate for {', '.join(s.names)}",
        "read the CA's message above; check tls.directory, tls.email and server.server_names (every name must "
        "resolve to this machine); certbot's log is in " + str(s.config_dir / "logs"),
        details=message,
    )


def renewal_time(cert_pem: bytes, s: Settings) -> tuple[dt.datetime, str]:
    """When to renew: the CA's suggested window (ARI, RFC 9773) when the installed ``acme``
    library can ask for it and the CA offers it, else two thirds into the lifetime."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        from acme import client, messages

        net = client.ClientNetwork(key=None, verify_ssl=s.ca_bundle or True, user_agent="wsgistack", timeout=15)
        acme_client = client.ClientV2(messages.Directory.from_json(net.get(s.directory).json()), net)
        if hasattr(acme_client, "renewal_time"):
            when, _ = acme_client.renewal_time(cert_pem)
            if when is not None:
                return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)), "the CA's renewal window (ARI)"
    except Exception:  # noqa: BLE001 - no acme library, or the CA has no ARI: fall back
        pass
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return start + (end - start) * 2 / 3, "two thirds of its lifetime"
