"""tls: the certificate nginx will serve, checked before it starts (tls.mode = files), and
the expiry of any certificate in place (files, acme).

nginx itself would only say "cannot load certificate" at start, or nothing at all for a
certificate that does not cover the served names or has expired: browsers say it later.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from wsgistack.checks.context import CheckContext
from wsgistack.checks.messages import ERROR, WARNING, Finding, declare
from wsgistack.checks.registry import register

EXPIRY_WARNING = dt.timedelta(days=14)

E101 = declare(
    "tls.E101",
    ERROR,
    "the certificate file is missing or not readable",
    "set tls.cert to the certificate chain (PEM, leaf first), readable by the user wsgistack runs as "
    "(nginx's master reads it; a root master reads any file)",
)
E102 = declare(
    "tls.E102",
    ERROR,
    "the private key file is missing, not readable or not an unencrypted PEM key",
    "set tls.key to the certificate's private key (PEM, no passphrase: nginx starts unattended), mode 600, "
    "owned by the user wsgistack runs as",
)
E103 = declare(
    "tls.E103",
    ERROR,
    "the private key does not belong to the certificate",
    "pair tls.cert and tls.key from the same issuance (compare `openssl x509 -noout -pubkey -in CERT` "
    "with `openssl pkey -pubout -in KEY`)",
)
E104 = declare(
    "tls.E104",
    ERROR,
    "the certificate does not cover every name in server.server_names: browsers refuse those names",
    "get a certificate for every served name, or list only the names it covers in server.server_names",
)
E105 = declare(
    "tls.E105",
    ERROR,
    "the certificate has expired (or is not valid yet)",
    "renew it and point tls.cert/tls.key at the new files, or let wsgistack obtain and renew one: tls.mode = acme",
)
W106 = declare(
    "tls.W106",
    WARNING,
    "the certificate expires within 14 days",
    "renew it now (tls.mode = acme renews by itself, at two thirds of the lifetime or when the CA suggests)",
)


@register()
def certificate_usable(ctx: CheckContext) -> Iterator[Finding]:
    plan = ctx.plan
    tls = plan.tls if plan is not None else None
    if tls is None or (tls.mode == "acme" and not tls.ready):
        return
    if tls.mode == "self-signed" and not tls.cert.is_file():
        return  # the start makes it (doctor makes none: its nginx -t runs on a throwaway one)
    from wsgistack.tls.certs import (
        CertProblem,
        covers,
        key_matches,
        read_chain,
        read_key,
        utcnow,
    )

    where = "tls.cert" if tls.mode == "files" else f"tls.mode = {tls.mode}"
    try:
        chain = read_chain(tls.cert)
    except CertProblem as exc:
        yield E101(exc.message, obj=f"{where} (from {ctx.loaded.origin('tls.cert')})" if tls.mode == "files" else where)
        return
    try:
        key = read_key(tls.key)
    except CertProblem as exc:
        yield E102(exc.message, obj=f"tls.key (from {ctx.loaded.origin('tls.key')})" if tls.mode == "files" else where)
        key = None
    leaf = chain[0]
    if key is not None and not key_matches(leaf, key):
        yield E103(f"{tls.key} is not the key of {tls.cert} (subject {leaf.subject.rfc4514_string()})", obj=where)
    names = [n for n in ctx.config.server.server_names if n != "*"]
    uncovered = [n for n in names if not covers(leaf, n)]
    if uncovered and tls.mode != "acme":  # acme covers the DNS names; IPs in server_names are only for Host
        from wsgistack.tls.certs import san_names

        dns, ips = san_names(leaf)
        has = ", ".join([*dns, *map(str, ips)]) or "no subjectAltName"
        yield E104(f"{tls.cert} covers {has}, not {', '.join(uncovered)}",
                   obj=f"server.server_names (from {ctx.loaded.origin('server.server_names')})")
    now = utcnow()
    if leaf.not_valid_after_utc <= now or leaf.not_valid_before_utc > now:
        yield E105(f"{tls.cert} is valid from {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} to "
                   f"{leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC", obj=where)
    elif leaf.not_valid_after_utc - now < EXPIRY_WARNING:
        days = (leaf.not_valid_after_utc - now).days
        yield W106(f"{tls.cert} expires on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, in {days} days", obj=where)
