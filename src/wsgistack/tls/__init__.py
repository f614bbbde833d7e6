"""HTTPS: nginx's TLS settings, the certificates for each ``tls.mode``, and the ACME renewer.

- :mod:`wsgistack.tls.certs`: read and check certificates, the local dev CA (self-signed);
- :mod:`wsgistack.tls.acme`: obtaining and renewing with certbot over nginx's own webroot;
- :mod:`wsgistack.tls.renewer`: the background process the process manager runs for acme.

Errors a user acts on, each with a hint (docs/tls.md): tls.E001 the CA refused (its own
message shown), tls.E002 the challenge port is not reachable, tls.E003 no ACME client.
The checks on a provided certificate before start are doctor checks (checks/tls.py).
"""

from __future__ import annotations

# Mozilla's "intermediate" profile (ssl-config.mozilla.org, guideline 5.7, nginx 1.22 with
# OpenSSL 3): TLS 1.2 and 1.3, forward-secret AEAD suites only; TLS 1.3's suites are
# OpenSSL's defaults and need no setting.
MOZILLA_INTERMEDIATE_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-CHACHA20-POLY1305",
    )
)
MOZILLA_CURVES = "X25519:prime256v1:secp384r1"

# The DHE suites above need a group: Mozilla prescribes RFC 7919's ffdhe2048 (its
# dhparam file is exactly this), a published safe prime, rather than one generated here.
FFDHE2048 = """\
-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
"""
