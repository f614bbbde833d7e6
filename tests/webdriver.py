"""A real browser for the status page: Debian's chromium driven by its chromedriver over the
W3C WebDriver protocol (plain HTTP and JSON: urllib is the whole client, no selenium), headless,
with ``--no-sandbox`` as root. Basic auth goes in as a header on every request (Chromium's
DevTools protocol through chromedriver): a URL with credentials would make the page's own
fetches fail (the Fetch standard refuses URLs with credentials)."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any




def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Browser:
    def __init__(self, width: int = 1280, height: int = 1000) -> None:
        driver, chromium = shutil.which("chromedriver"), shutil.which("chromium") or shutil.which("chromium-browser")
        if not driver or not chromium:
            raise RuntimeError("chromium and chromium-driver are missing (make system-deps installs them)")
        self.port = _free_port()
        self.profile = tempfile.mkdtemp(prefix="wst-chromium-")
        self.proc = subprocess.Popen([driver, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                self._call("GET", "/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        options = {"binary": chromium, "args": ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                                "--disable-background-networking", f"--window-size={width},{height}",
                                                f"--user-data-dir={self.profile}"]}
        answer = self._call("POST", "/session", {"capabilities": {"alwaysMatch": {"browserName": "chrome",
                                                                                  "goog:chromeOptions": options}}})
        self.session = answer["value"]["sessionId"]

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:  # noqa: S310 - loopback
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"webdriver {method} {path}: {exc.code} {exc.read()[:500]!r}") from None

    def _s(self, method: str, path: str, body: Any = None) -> Any:
        return self._call(method, f"/session/{self.session}{path}", body).get("value")

    def basic_auth(self, user_password: str) -> None:
        header = "Basic " + base64.b64encode(user_password.encode()).decode()
        self._s("POST", "/goog/cdp/execute", {"cmd": "Network.enable", "params": {}})
        self._s("POST", "/goog/cdp/execute", {"cmd": "Network.setExtraHTTPHeaders",
                                             "params": {"headers": {"Authorization": header}}})

    def open(self, url: str) -> None:
        self._s("POST", "/url", {"url": url})

    def run(self, script: str, *args: Any) -> Any:
        return self._s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def wait(self, script: str, timeout: float = 20) -> Any:
        """Until ``script`` (a function body: `return ...`) answers something true."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.run(script)
            if value or time.monotonic() > deadline:
                return value
            time.sleep(0.2)

    def click(self, css: str) -> None:
        found = self._s("POST", "/element", {"using": "css selector", "value": css})
        element = next(iter(found.values()))
        self._s("POST", f"/element/{element}/click", {})

    def screenshot(self) -> bytes:
        return base64.b64decode(self._s("GET", "/screenshot"))

    def close(self) -> None:
        try:
            self._call("DELETE", f"/session/{self.session}")
        except (OSError, AssertionError):
            pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
