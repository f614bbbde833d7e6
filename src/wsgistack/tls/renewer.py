"""The ACME renewer: one more process for the process manager (tls.mode = acme).

``python -m wsgistack.tls.renewer RUNTIME/tls-renewer.json``

- No certificate yet: nginx serves plain HTTP (with the challenge path); obtain one, switch
  nginx to the HTTPS config rendered beside it (nginx-https.conf) and reload nginx (HUP).
- Then sleep until the renewal time (the CA's ARI window, else two thirds of the lifetime),
  renew, and reload nginx (HUP: new workers take the new certificate, the old ones finish
  their requests, so no request is dropped).
- A failure is logged with its id and hint (tls.E001 with the CA's message, tls.E002 when
  the challenge port does not reach nginx) and retried later; HTTP or the old certificate
  keeps serving meanwhile. Never a traceback for a CA's refusal.
- Signals: TERM/INT stop (the manager); HUP re-reads the settings and the certificate
  (``wsgistack reload``); USR1 renews now (or retries a failed first attempt at once).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
import time
from pathlib import Path

from wsgistack.contracts import Trust, read_pidfile
from wsgistack.errors import WsgistackError
from wsgistack.tls.acme import Settings, obtain, renewal_time

FIRST_RETRY = 30.0  # seconds after a failure; doubles up to MAX_RETRY
MAX_RETRY = 3600.0
RECHECK = 6 * 3600.0  # how often the renewal time is asked again (ARI's default Retry-After)


def say(text: str) -> None:
    print(text, flush=True)


class Renewer:
    def __init__(self, conf: Path) -> None:
        self.conf = conf
        self.settings = Settings.load(conf)
        self.stop = False
        self.force = False
        self.recheck = False
        self.retry = FIRST_RETRY

    def on_signal(self, signum: int, _frame: object) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.stop = True
        elif signum == signal.SIGUSR1:
            self.force = True
        elif signum == signal.SIGHUP:
            self.recheck = True

    def sleep_until(self, when: float) -> None:
        while not (self.stop or self.force or self.recheck) and time.time() < when:
            time.sleep(min(1.0, max(0.0, when - time.time())))

    def reload_nginx(self, why: str) -> None:
        s = self.settings
        # nginx is our sibling under the process manager: a pid in its pidfile that is not the
        # manager's child (stale, or planted) gets no signal.
        try:
            pid = read_pidfile(s.nginx_pid, Trust.me(), parent=os.getppid())
            if pid is None:
                raise OSError("no nginx of this stack is running")
            os.kill(pid, signal.SIGHUP)
        except (OSError, WsgistackError) as exc:
            say(f"could not reload nginx ({s.nginx_pid}: {exc}); it serves the new certificate after its next reload")
            return
        say(f"{why}: nginx reloaded gracefully (HUP to {pid})")

    def switch_to_https(self) -> None:
        """Swap in the HTTPS config rendered at start (atomic rename: nginx never reads half)."""
        s = self.settings
        if not s.nginx_https_conf.is_file():
            return
        tmp = s.nginx_conf.with_name(".nginx.conf.https.tmp")
        tmp.write_text(s.nginx_https_conf.read_text())
        os.replace(tmp, s.nginx_conf)

    def attempt(self, *, first: bool) -> bool:
        s = self.settings
        what = "obtaining a certificate" if first else "renewing the certificate"
        say(f"{what} for {', '.join(s.names)} from {s.directory}")
        try:
            obtain(s, force=not first, env=os.environ, should_stop=lambda: self.stop)
        except WsgistackError as exc:
            say(exc.render())
            say(f"retrying in {self.retry:g}s (kill -USR1 {os.getpid()} retries now)"
                + ("; nginx keeps serving plain HTTP meanwhile" if first else "; the current certificate keeps serving"))
            return False
        if self.stop:
            return False
        self.retry = FIRST_RETRY
        if first:
            self.switch_to_https()
        self.reload_nginx("certificate obtained" if first else "certificate renewed")
        return True

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(sig, self.on_signal)
        announced: tuple[dt.datetime, str] | None = None
        while not self.stop:
            if self.recheck:
                self.recheck = False
                self.settings = Settings.load(self.conf)
            s = self.settings
            have = s.cert.is_file() and s.key.is_file()
            if have and s.nginx_https_conf.is_file() and "ssl_certificate" not in s.nginx_conf.read_text():
                # A certificate from an earlier run, and nginx started on plain HTTP (it was
                # rendered before the certificate existed): switch now.
                self.switch_to_https()
                self.reload_nginx("certificate found")
            if not have or self.force:
                self.force = False
                if not self.attempt(first=not have):
                    self.sleep_until(time.time() + self.retry)
                    self.retry = min(MAX_RETRY, self.retry * 2)
                continue
            when, why = renewal_time(s.cert.read_bytes(), s)
            if when <= dt.datetime.now(dt.UTC):
                self.force = True
                continue
            if (when, why) != announced:
                announced = (when, why)
                say(f"next renewal {when:%Y-%m-%d %H:%M} UTC ({why}); kill -USR1 {os.getpid()} renews now")
            # Ask again now and then: the CA may move its window (ARI), e.g. ahead of a revocation.
            self.sleep_until(min(when.timestamp(), time.time() + RECHECK))
        return 0


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m wsgistack.tls.renewer RUNTIME/tls-renewer.json", file=sys.stderr)
        return 2
    return Renewer(Path(argv[0])).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
