"""Tests for the demo, run with ``python manage.py test``.

wsgistack's pytest suite runs them in a subprocess (tests/examples/), because
Django can only be configured once per process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import tempfile
import zlib
from pathlib import Path
from unittest import mock

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client, SimpleTestCase, TestCase, override_settings

from .models import Post
from .validators import IMAGE_MAX_BYTES

# The project's staticfiles backend (ManifestStaticFilesStorage) only works
# after collectstatic; most tests use the plain backend instead.
PLAIN_STORAGES = {
    **settings.STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
PASSWORD = "c0rrect-horse-battery"


def tiny_png() -> bytes:
    """A valid 1x1 PNG built with the stdlib (the demo does not need Pillow)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00\x11\x7a\x65")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


class TempMediaMixin:
    """Point MEDIA_ROOT at a throw-away directory for the test class."""

    media_root: str

    @classmethod
    def setUpClass(cls) -> None:
        cls.media_root = tempfile.mkdtemp(prefix="demo-media-")
        cls._media_override = override_settings(MEDIA_ROOT=cls.media_root, STORAGES=PLAIN_STORAGES)
        cls._media_override.enable()
        super().setUpClass()  # type: ignore[misc]

    @classmethod
    def tearDownClass(cls) -> None:
        super().tearDownClass()  # type: ignore[misc]
        cls._media_override.disable()
        shutil.rmtree(cls.media_root, ignore_errors=True)


# SimpleTestCase refuses database queries, which proves these endpoints never
# touch the DB (nor the DB-backed session).
class OpsEndpointTests(SimpleTestCase):
    def test_healthz(self) -> None:
        response = self.client.get("/healthz")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.content, b"ok")
        self.assertTrue(response["Content-Type"].startswith("text/plain"))

    def test_hello_sets_no_cookies(self) -> None:
        response = self.client.get("/hello")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.content, b"Hello, world!")
        self.assertTrue(response["Content-Type"].startswith("text/plain"))
        self.assertEqual(dict(response.cookies), {})
        self.assertNotIn("Vary", response)

    def test_slow(self) -> None:
        response = self.client.get("/slow", {"seconds": "0.01"})
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.content, b"slept 0.01")

    def test_slow_clamps_and_caps(self) -> None:
        with mock.patch("demo.ops_views.time.sleep") as sleep:
            self.assertEqual(self.client.get("/slow", {"seconds": "1000"}).content, b"slept 60")
            sleep.assert_called_once_with(60.0)
            sleep.reset_mock()
            self.assertEqual(self.client.get("/slow", {"seconds": "-5"}).content, b"slept 0")
            sleep.assert_called_once_with(0.0)
            sleep.reset_mock()
            self.assertEqual(self.client.get("/slow").content, b"slept 1")

    def test_slow_rejects_garbage(self) -> None:
        for value in ("abc", "nan", "inf", ""):
            with self.subTest(value=value):
                response = self.client.get("/slow", {"seconds": value})
                self.assertEqual(response.status_code, 400)

    def test_whoami_plain_http(self) -> None:
        response = self.client.get("/whoami")
        self.assertEqual(response.status_code, 200)
        data = response.json()
        self.assertEqual(
            set(data),
            {
                "app",
                "scheme",
                "is_secure",
                "host",
                "remote_addr",
                "x_forwarded_for",
                "x_forwarded_proto",
                "pid",
            },
        )
        self.assertEqual(data["app"], "django")
        self.assertEqual(data["scheme"], "http")
        self.assertIs(data["is_secure"], False)
        self.assertEqual(data["host"], "testserver")
        self.assertEqual(data["remote_addr"], "127.0.0.1")
        self.assertIsNone(data["x_forwarded_for"])
        self.assertIsNone(data["x_forwarded_proto"])
        self.assertEqual(data["pid"], os.getpid())

    def test_whoami_uses_wsgi_url_scheme(self) -> None:
        # secure=True sets wsgi.url_scheme=https, which is how wsgistack
        # passes the real scheme.
        data = self.client.get("/whoami", secure=True).json()
        self.assertEqual(data["scheme"], "https")
        self.assertIs(data["is_secure"], True)

    def test_whoami_reports_but_does_not_trust_forwarded_headers(self) -> None:
        data = self.client.get(
            "/whoami",
            headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"},
        ).json()
        self.assertEqual(data["x_forwarded_for"], "203.0.113.7")
        self.assertEqual(data["x_forwarded_proto"], "https")
        self.assertEqual(data["scheme"], "http")  # no SECURE_PROXY_SSL_HEADER by default

    @override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
    def test_whoami_with_proxy_ssl_header_enabled(self) -> None:
        data = self.client.get("/whoami", headers={"X-Forwarded-Proto": "https"}).json()
        self.assertEqual(data["scheme"], "https")
        self.assertIs(data["is_secure"], True)

    def test_whoami_with_host_header(self) -> None:
        with self.settings(ALLOWED_HOSTS=["demo.example.org"]):
            data = self.client.get("/whoami", headers={"Host": "demo.example.org"}).json()
            self.assertEqual(data["host"], "demo.example.org")
            self.assertEqual(self.client.get("/whoami", headers={"Host": "evil.test"}).status_code, 400)

    def test_upload_size_counts_body_bytes(self) -> None:
        client = Client(enforce_csrf_checks=True)  # the endpoint must be CSRF-exempt
        # Larger than DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB): the body is streamed.
        size = 3 * 1024 * 1024 + 7
        response = client.post("/upload-size", data=b"x" * size, content_type="application/octet-stream")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.content, str(size).encode())
        empty = client.post("/upload-size", data=b"", content_type="application/octet-stream")
        self.assertEqual(empty.content, b"0")

    def test_upload_size_requires_post(self) -> None:
        self.assertEqual(self.client.get("/upload-size").status_code, 405)


class AuthAndPostFlowTests(TempMediaMixin, TestCase):
    def setUp(self) -> None:
        # A browser-like client: CSRF is enforced as in production.
        self.browser = Client(enforce_csrf_checks=True)

    def _csrf_post(self, path: str, data: dict[str, object]):
        """GET the page (to obtain the CSRF cookie + token), then POST the form."""
        page = self.browser.get(path)
        self.assertEqual(page.status_code, 200, path)
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
        self.assertIsNotNone(match, f"no CSRF token in {path}")
        return self.browser.post(path, {**data, "csrfmiddlewaretoken": match.group(1)})

    def test_register_login_post_with_image_and_list(self) -> None:
        # Register (logs the new user in).
        response = self._csrf_post(
            "/accounts/register/",
            {"username": "alice", "password1": PASSWORD, "password2": PASSWORD},
        )
        self.assertRedirects(response, "/")
        self.assertTrue(get_user_model().objects.filter(username="alice").exists())
        # The session lives in the database (default session engine).
        self.assertEqual(settings.SESSION_ENGINE, "django.contrib.sessions.backends.db")
        self.assertGreaterEqual(Session.objects.count(), 1)

        # Log out (POST only in Django 5) and back in.
        home = self.browser.get("/")
        self.assertContains(home, "Signed in as <strong>alice</strong>", html=False)
        response = self._csrf_post_from_page("/", "/accounts/logout/", {})
        self.assertRedirects(response, "/")
        self.assertNotContains(self.browser.get("/"), "Signed in as")
        response = self._csrf_post("/accounts/login/", {"username": "alice", "password": PASSWORD})
        self.assertRedirects(response, "/")

        # Create a post with an image.
        image = SimpleUploadedFile("holiday.png", tiny_png(), content_type="image/png")
        response = self._csrf_post("/posts/new/", {"body": "Hello from the demo", "image": image})
        # Don't let assertRedirects fetch "/": that would consume the flash message.
        self.assertRedirects(response, "/", fetch_redirect_response=False)

        post = Post.objects.get()
        self.assertEqual(post.author.username, "alice")
        self.assertTrue(post.image.name.startswith("posts/"))
        stored = Path(settings.MEDIA_ROOT) / post.image.name
        self.assertEqual(stored.read_bytes(), tiny_png())
        self.assertTrue(post.image.url.startswith("/media/posts/"))

        # The list shows the post, its image via MEDIA_URL, and the flash message.
        home = self.browser.get("/")
        self.assertContains(home, "Hello from the demo")
        self.assertContains(home, f'src="{post.image.url}"')
        self.assertContains(home, "Post published.")
        self.assertContains(home, "/static/posts/style.css")

    def _csrf_post_from_page(self, page_path: str, action: str, data: dict[str, object]):
        page = self.browser.get(page_path)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
        self.assertIsNotNone(token)
        return self.browser.post(action, {**data, "csrfmiddlewaretoken": token.group(1)})

    def test_post_without_csrf_token_is_rejected(self) -> None:
        get_user_model().objects.create_user("bob", password=PASSWORD)
        self.browser.login(username="bob", password=PASSWORD)
        response = self.browser.post("/posts/new/", {"body": "sneaky"})
        self.assertEqual(response.status_code, 403)
        self.assertFalse(Post.objects.exists())

    def test_logout_requires_post(self) -> None:
        self.assertEqual(self.client.get("/accounts/logout/").status_code, 405)

    def test_create_requires_login(self) -> None:
        response = self.client.get("/posts/new/")
        self.assertRedirects(response, "/accounts/login/?next=/posts/new/")

    def test_post_without_image(self) -> None:
        user = get_user_model().objects.create_user("carol", password=PASSWORD)
        self.client.force_login(user)
        response = self.client.post("/posts/new/", {"body": "text only"})
        self.assertRedirects(response, "/")
        self.assertEqual(Post.objects.get().image.name, "")
        self.assertContains(self.client.get("/"), "text only")

    def test_image_validation(self) -> None:
        user = get_user_model().objects.create_user("dave", password=PASSWORD)
        self.client.force_login(user)
        oversized = tiny_png() + b"\x00" * (IMAGE_MAX_BYTES + 1 - len(tiny_png()))
        cases = {
            "wrong extension": SimpleUploadedFile("notes.txt", b"hello", content_type="text/plain"),
            "svg refused": SimpleUploadedFile(
                "x.svg", b"<svg onload='alert(1)'/>", content_type="image/svg+xml"
            ),
            "html posing as png": SimpleUploadedFile(
                "x.png", b"<html><script></script>", content_type="image/png"
            ),
            "too large": SimpleUploadedFile("big.png", oversized, content_type="image/png"),
        }
        files_before = set(Path(self.media_root).rglob("*"))
        for label, upload in cases.items():
            with self.subTest(label):
                response = self.client.post("/posts/new/", {"body": label, "image": upload})
                self.assertEqual(response.status_code, 200)  # form re-rendered
                self.assertTrue(response.context["form"].errors.get("image"))
        self.assertFalse(Post.objects.exists())
        self.assertEqual(set(Path(self.media_root).rglob("*")), files_before)

    def test_register_rejects_mismatched_passwords(self) -> None:
        response = self.client.post(
            "/accounts/register/",
            {"username": "eve", "password1": PASSWORD, "password2": PASSWORD + "x"},
        )
        self.assertEqual(response.status_code, 200)
        self.assertFalse(get_user_model().objects.filter(username="eve").exists())


class ManifestStaticTests(TestCase):
    """With the real (manifest) storage, pages link hashed static names."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.static_root = tempfile.mkdtemp(prefix="demo-static-")
        cls._override = override_settings(STATIC_ROOT=cls.static_root)
        cls._override.enable()
        super().setUpClass()
        call_command("collectstatic", interactive=False, verbosity=0)

    @classmethod
    def tearDownClass(cls) -> None:
        super().tearDownClass()
        cls._override.disable()
        shutil.rmtree(cls.static_root, ignore_errors=True)

    def test_storage_backend(self) -> None:
        self.assertEqual(
            settings.STORAGES["staticfiles"]["BACKEND"],
            "django.contrib.staticfiles.storage.ManifestStaticFilesStorage",
        )

    def test_pages_use_hashed_names(self) -> None:
        html = self.client.get("/").content.decode()
        css = re.search(r'href="/static/(posts/style\.[0-9a-f]{12}\.css)"', html)
        self.assertIsNotNone(css, html)
        self.assertRegex(html, r'src="/static/posts/logo\.[0-9a-f]{12}\.png"')
        # The stylesheet's relative url() was rewritten to the hashed logo too.
        content = (Path(self.static_root) / css.group(1)).read_text()
        self.assertRegex(content, r'url\("logo\.[0-9a-f]{12}\.png"\)')
        manifest = json.loads((Path(self.static_root) / "staticfiles.json").read_text())
        self.assertIn("posts/style.css", manifest["paths"])


class FakeCassandra:
    """Stands in for a cassandra-driver session: keeps the rows the store inserts."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []

    def execute(self, query: str, params: tuple = ()):  # type: ignore[type-arg]
        import time
        from types import SimpleNamespace

        from cassandra.util import uuid_from_time

        if query.startswith("INSERT"):
            self.rows.insert(0, params)
            return []
        day, limit = params
        return [SimpleNamespace(created_at=uuid_from_time(time.time()), author=a, body=b, image=i)
                for d, a, b, i in self.rows if d == day][:limit]


class CassandraBackendTests(TempMediaMixin, TestCase):
    """POSTS_BACKEND=cassandra: posts go through posts.cassandra_store (seed 004's PostModel);
    a real server is tested in wsgistack's tests/integration/test_cassandra_posts.py."""

    def setUp(self) -> None:
        try:
            import cassandra  # noqa: F401
        except ImportError:
            self.skipTest("cassandra-driver is not installed")
        backend = override_settings(POSTS_BACKEND="cassandra")
        backend.enable()
        self.addCleanup(backend.disable)
        self.fake = FakeCassandra()
        patcher = mock.patch("posts.cassandra_store.session", return_value=self.fake)
        patcher.start()
        self.addCleanup(patcher.stop)

    def test_posts_are_written_to_and_read_from_cassandra(self) -> None:
        get_user_model().objects.create_user("cass", password=PASSWORD)
        self.client.login(username="cass", password=PASSWORD)
        response = self.client.post("/posts/new/", {"body": "stored in cassandra"}, follow=True)
        self.assertContains(response, "stored in cassandra")
        self.assertEqual([row[1:3] for row in self.fake.rows], [("cass", "stored in cassandra")])
        self.assertFalse(Post.objects.exists())  # nothing in the SQL database

    def test_nothing_connects_at_import(self) -> None:
        from posts import cassandra_store

        self.assertIsNone(cassandra_store._session)


class FakeCluster:
    """Stands in for cassandra.cluster.Cluster: each connect() makes a session bound to the
    process that made it, and a session used in another process (carried across a fork, the
    way the real driver's sockets and event-loop thread would be) refuses to run a query."""

    made: list[int] = []

    def __init__(self, hosts: list[str], connect_timeout: float = 5) -> None:
        self.hosts = hosts

    def connect(self) -> FakeForkBoundSession:
        FakeCluster.made.append(os.getpid())
        return FakeForkBoundSession()


class FakeForkBoundSession:
    def __init__(self) -> None:
        self.pid = os.getpid()

    def execute(self, query: str, params: tuple = ()):  # type: ignore[type-arg]
        if os.getpid() != self.pid:
            raise RuntimeError(f"a driver session made in pid {self.pid} used in pid {os.getpid()} (after a fork)")
        return []

    def set_keyspace(self, keyspace: str) -> None:
        self.execute(f"USE {keyspace}")


class CassandraForkSafetyTests(TestCase):
    """The store's own session(): nothing connects at import, and a process forked after the
    parent connected (a uWSGI worker forked from a master that loaded the app) makes its own
    session instead of using the parent's. Against a fake driver: no Cassandra server runs
    here; the real one is tests/integration/test_cassandra_posts.py (CASSANDRA_HOSTS)."""

    def setUp(self) -> None:
        import sys
        import types

        fake = types.ModuleType("cassandra.cluster")
        fake.Cluster = FakeCluster  # type: ignore[attr-defined]
        package = sys.modules.get("cassandra") or types.ModuleType("cassandra")
        patcher = mock.patch.dict(sys.modules, {"cassandra": package, "cassandra.cluster": fake})
        patcher.start()
        self.addCleanup(patcher.stop)
        from posts import cassandra_store

        state = mock.patch.multiple(cassandra_store, _session=None, _pid=0)
        state.start()
        self.addCleanup(state.stop)
        FakeCluster.made = []

    def test_a_forked_process_connects_on_its_own(self) -> None:
        from posts import cassandra_store

        parent = cassandra_store.session()
        parent.execute("SELECT 1")
        self.assertIs(cassandra_store.session(), parent)  # one session per process
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # the forked "worker"
            code = 0
            try:
                os.close(read)
                mine = cassandra_store.session()
                mine.execute("SELECT 1")
                os.write(write, b"new" if mine is not parent and mine.pid == os.getpid() else b"reused")
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                os.write(write, repr(exc).encode())
                code = 1
            finally:
                os._exit(code)
        os.close(write)
        with os.fdopen(read, "rb") as fh:
            said = fh.read().decode()
        _, status = os.waitpid(child, 0)
        self.assertEqual(said, "new")
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        self.assertIs(cassandra_store.session(), parent)  # the parent keeps its own
        self.assertEqual(FakeCluster.made, [os.getpid()])  # the child's connect happened in the child
