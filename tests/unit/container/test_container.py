"""Pure parts of the container recipe: Dockerfile, .dockerignore, compose, wheel, probe."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import zipfile
from io import BytesIO
from pathlib import Path, PurePosixPath

import pytest

from wsgistack.image import wheel
from wsgistack.render.compose import ComposeOptions, render_compose
from wsgistack.render.dockerfile import DockerfileOptions, render_dockerfile, writable_dirs
from wsgistack.plan.image import DataDir, ProjectFacts
from wsgistack.image.requirements import requirement_tree
from wsgistack.errors import WsgistackError

FACTS = ProjectFacts(
    path=Path("/p"), name="p", app_kind="django",
    data_dirs=(DataDir("static", "/static/", PurePosixPath("var/static")), DataDir("media", "/media/", PurePosixPath("var/media"))),
)
SOURCE = wheel.WsgistackSource(wheel="wsgistack-0.1.0-py3-none-any.whl", dependencies=("click>=8.1",))


def files(options: DockerfileOptions = DockerfileOptions()) -> dict[str, str]:
    return {f.path: f.content for f in render_dockerfile(FACTS, SOURCE, options)}


def test_dependencies_are_installed_before_the_code_is_copied() -> None:
    text = files()["Dockerfile"]
    assert text.index("-r /tmp/requirements/requirements.txt") < text.index("COPY . /app")
    assert text.index('"click>=8.1"') < text.index("COPY .wsgistack/requirements /tmp/requirements")
    assert "USER 10001:0" in text and "STOPSIGNAL SIGTERM" in text and "HEALTHCHECK" in text
    assert 'ENTRYPOINT ["/opt/wsgistack/bin/wsgistack", "entrypoint"]' in text


def test_wsgistack_and_the_app_get_separate_environments_each_pip_checked() -> None:
    """/opt/wsgistack: wsgistack and its dependencies; /opt/venv: the app's requirements and
    pyuwsgi only (issue 17: an app pinning old pydantic/Jinja2/click must build)."""
    text = files()["Dockerfile"]
    assert 'RUN /opt/wsgistack/bin/pip install --no-cache-dir --disable-pip-version-check "click>=8.1"' in text
    assert '/opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check "pyuwsgi>=2.0.28"' in text
    assert "/opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements/requirements.txt \\\n && /opt/venv/bin/pip check" in text
    assert "--no-deps /tmp/wheels/wsgistack-0.1.0-py3-none-any.whl \\\n && /opt/wsgistack/bin/pip check" in text
    assert "ENV VIRTUAL_ENV=/opt/venv" in text  # how wsgistack finds the app's interpreter
    installs = [line for line in text.splitlines() if "pip install" in line]
    assert not [line for line in installs if "/opt/venv/bin/pip" in line and ("click" in line or "wsgistack" in line)]
    # STATIC_ROOT/MEDIA_ROOT come from the build step (the image's Python), not the host's detection.
    assert "/app/var/static" not in text and "/opt/wsgistack/bin/wsgistack entrypoint --build-step /app" in text
    assert text.index("COPY . /app") < text.index("--build-step") < text.index("COPY --from=code /app /app")
    assert "chmod -R go-w /app" in text and "RUN /opt/venv/bin/uwsgi --version" in text and 'VOLUME ["/data"]' in text
    text = files(DockerfileOptions(writable=("uploads",)))["Dockerfile"]
    assert "install -d -o 10001 -g 0 -m 2770 /app/uploads" in text


def test_runtime_image_has_no_package_manager_unless_asked() -> None:
    slim = files()["Dockerfile"]
    # One flattened system layer, so what the system stage removed is really gone.
    assert "FROM scratch\n# hadolint ignore=DL3067\nCOPY --from=system / /" in slim
    assert "dpkg --purge --force-remove-essential" in slim and "perl-base" in slim
    assert "Provides: iproute2" in slim and "/usr/lib/python3*/test" in slim
    # FROM scratch has no environment: PATH is complete on its own.
    assert "PATH=/opt/venv/bin:/opt/wsgistack/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in slim
    kept = files(DockerfileOptions(keep_apt=True))["Dockerfile"]
    assert "FROM system\n" in kept and "FROM scratch" not in kept and "dpkg --purge" not in kept


def test_heroku_dockerfile_builds_the_term_drain_library() -> None:
    assert "termdrain" not in files()["Dockerfile"]
    text = files(DockerfileOptions(heroku=True))["Dockerfile"]
    assert "python3-venv gcc libc6-dev" in text
    assert "-o /opt/wsgistack/lib/wsgistack-termdrain.so /opt/wsgistack/lib/python3*/site-packages/wsgistack/image/termdrain.c" in text


def test_dockerignore_excludes_nested_secrets_and_host_data() -> None:
    ignore = files()[".dockerignore"].splitlines()
    for pattern in ("**/.env", "**/.env.*", "**/*secret*.json", "**/*credential*.json", "**/id_rsa*", ".git", "**/venv",
                    "var/static", "var/media", "**/*.sqlite", "**/*.db", "**/*-journal", "**/*-wal"):
        assert pattern in ignore
    assert "!.wsgistack/wheels" in ignore and "!.wsgistack/requirements" in ignore
    kept = files(DockerfileOptions(keep=("app/secret_utils.py",)))[".dockerignore"].splitlines()
    assert kept[-1] == "!app/secret_utils.py"  # after the patterns it overrides


def test_options_are_validated() -> None:
    with pytest.raises(WsgistackError, match="docker.E002"):
        files(DockerfileOptions(packages=("libpq5; rm -rf /",)))
    with pytest.raises(WsgistackError, match="docker.E002"):
        files(DockerfileOptions(writable=("../etc",)))
    assert writable_dirs(FACTS, DockerfileOptions(writable=("uploads",))) == ("uploads",)  # the rest: the build step


def test_missing_requirements_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WsgistackError) as info:
        requirement_tree(tmp_path, "requirements.txt")
    assert info.value.id == "docker.E001" and "--requirements" in info.value.hint


def test_vendored_wheel_is_reproducible_and_installable_without_tooling(tmp_path: Path) -> None:
    name, data, deps = wheel.build_wheel()  # the running wsgistack, however it is installed
    assert wheel.build_wheel()[1] == data  # same code, same bytes: Docker's cache holds
    # wsgistack's own environment in the image: neither tooling nor uWSGI (the app's has that)
    assert not {wheel._name(d) for d in deps} & (wheel.NOT_IN_IMAGE | wheel.APP_SIDE) and "pydantic" in {wheel._name(d) for d in deps}
    with zipfile.ZipFile(BytesIO(data)) as zf:
        names = zf.namelist()
        assert "wsgistack/standalone/healthcheck.py" in names and "wsgistack/render/templates/Dockerfile.j2" in names
        assert "wsgistack/image/termdrain.c" in names  # the Heroku Dockerfile compiles it
        assert not [n for n in names if "__pycache__" in n]
        meta = zf.read(name.split("-py3")[0] + ".dist-info/METADATA").decode()
        # The package's files are the running ones, byte for byte
        assert zf.read("wsgistack/image/wheel.py") == Path(wheel.__file__).read_bytes()
    assert 'Requires-Dist: rich>=13; extra == "tools"' in meta
    # Every entry matches its RECORD hash (WheelFile checks on read, as pip does on install)
    from wheel.wheelfile import WheelFile

    whl = Path(tmp_path) / name
    whl.write_bytes(data)
    with WheelFile(whl) as wf:
        for entry in wf.namelist():
            wf.read(entry)


def test_split_compose_shares_socket_and_static() -> None:
    text = render_compose(FACTS, ComposeOptions(image="img", split=True)).content
    assert "WSGISTACK_ROLE: app" in text and "WSGISTACK_ROLE: web" in text
    assert text.count('UWSGI_URI: "unix:/run/wsgistack/uwsgi.sock"') == 2
    assert 'WSGISTACK_SERVER__STATIC: "/static/=/app/var/static /media/=/app/var/media"' in text
    assert "condition: service_healthy" in text and "- static:/app/var/static:ro" in text
    tcp = render_compose(FACTS, ComposeOptions(image="img", split=True, socket="tcp")).content
    assert 'UWSGI_URI: "127.0.0.1:8001"' in tcp and "socket:" not in tcp
    single = render_compose(FACTS, ComposeOptions(image="img")).content
    assert "WSGISTACK_ROLE" not in single and "- media:/app/var/media" in single and "static:" not in single


def test_compose_is_valid_yaml_for_docker_compose(tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load(render_compose(FACTS, ComposeOptions(image="img", split=True, env=(("A", 'x"y'),))).content)
    assert doc["services"]["app"]["environment"]["A"] == 'x"y'
    assert set(doc["volumes"]) == {"socket", "static", "media"}


def _serve_once(status: int) -> tuple[socket.socket, int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def answer() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(b"HTTP/1.1 %d X\r\n\r\n" % status)

    threading.Thread(target=answer, daemon=True).start()
    return srv, srv.getsockname()[1]


@pytest.mark.parametrize(("status", "code"), [(200, 0), (400, 0), (502, 1)])
def test_healthcheck_counts_below_500_as_healthy(tmp_path: Path, status: int, code: int) -> None:
    srv, port = _serve_once(status)
    from wsgistack.contracts import Health

    # What the start writes (contracts.Health), read by the stdlib-only probe.
    Health(http_host="127.0.0.1", http_port=port, path="/_wsgistack/ready", host_header="example.com").write(
        tmp_path / "health.json")
    import wsgistack.standalone.healthcheck as hc

    proc = subprocess.run([sys.executable, "-I", "-S", hc.__file__], env={"WSGISTACK_RUNTIME_DIR": str(tmp_path)},
                          capture_output=True, text=True, timeout=10)
    srv.close()
    assert proc.returncode == code, proc.stderr


def test_split_compose_runs_each_background_process_in_its_own_worker_service() -> None:
    yaml = pytest.importorskip("yaml")
    import dataclasses

    facts = dataclasses.replace(FACTS, processes=("sendalerts", "sendreports"))
    doc = yaml.safe_load(render_compose(facts, ComposeOptions(image="img", split=True)).content)
    worker = doc["services"]["worker-sendalerts"]
    assert worker["environment"] == {"WSGISTACK_ROLE": "worker", "WSGISTACK_PROCESS": "sendalerts"}
    assert worker["image"] == "img" and worker["depends_on"] == {"app": {"condition": "service_healthy"}}
    assert "worker-sendreports" in doc["services"]
    # One container: they run beside nginx and uWSGI, no extra service.
    single = yaml.safe_load(render_compose(facts, ComposeOptions(image="img")).content)
    assert list(single["services"]) == ["web"]


def test_compose_with_tls_keeps_certificates_on_a_volume() -> None:
    import yaml

    single = yaml.safe_load(render_compose(FACTS, ComposeOptions(image="img", tls="acme")).content)
    web = single["services"]["web"]
    assert web["environment"]["WSGISTACK_TLS__MODE"] == "acme" and web["environment"]["WSGISTACK_TLS__PORT"] == "8443"
    assert "tls:/data/tls" in web["volumes"] and "tls" in single["volumes"]
    split = yaml.safe_load(render_compose(FACTS, ComposeOptions(image="img", tls="self-signed", split=True)).content)
    assert "tls:/data/tls" in split["services"]["web"]["volumes"]
    assert "WSGISTACK_TLS__MODE" not in split["services"]["app"]["environment"]  # only nginx terminates TLS
    off = yaml.safe_load(render_compose(FACTS, ComposeOptions(image="img")).content)
    assert "tls" not in (off.get("volumes") or {})


def test_dockerfile_keeps_tls_data_in_one_directory_and_installs_certbot_for_acme() -> None:
    source = SOURCE
    plain = next(f.content for f in render_dockerfile(FACTS, source, DockerfileOptions()) if f.path == "Dockerfile")
    assert "WSGISTACK_TLS__DATA_DIR=/data/tls" in plain and "/run/wsgistack /data/tls" in plain
    assert "certbot" not in plain
    acme = next(f.content for f in render_dockerfile(FACTS, source, DockerfileOptions(acme=True)) if f.path == "Dockerfile")
    assert '"certbot>=2.1"' in acme


def test_healthcheck_believes_no_file_others_could_write(tmp_path: Path) -> None:
    from wsgistack.contracts import Health

    import wsgistack.standalone.healthcheck as hc

    Health(http_host="127.0.0.1", http_port=1, path="/").write(tmp_path / "health.json")
    (tmp_path / "health.json").chmod(0o666)
    proc = subprocess.run([sys.executable, "-I", "-S", hc.__file__], env={"WSGISTACK_RUNTIME_DIR": str(tmp_path)},
                          capture_output=True, text=True, timeout=10)
    assert proc.returncode == 1 and "not the stack's own file" in proc.stderr


def test_split_compose_shares_what_the_app_writes_with_its_workers_never_with_nginx() -> None:
    """Issue 21 (extra 4): a STORAGES location (uploads, no URL) is one volume for the app and
    every worker-NAME, not served by nginx; STATIC_ROOT stays served."""
    import yaml

    facts = ProjectFacts(path=Path("/p"), name="p", app_kind="django", processes=("rqworker",), detected=True,
                         data_dirs=(DataDir("static", "/static/", PurePosixPath("proj/staticfiles")),
                                    DataDir("data", "", PurePosixPath("proj/uploads"))))
    split = yaml.safe_load(render_compose(facts, ComposeOptions(image="img", split=True)).content)
    services = split["services"]
    assert "uploads:/app/proj/uploads" in services["app"]["volumes"]
    assert "uploads:/app/proj/uploads" in services["worker-rqworker"]["volumes"]
    assert not [v for v in services["web"]["volumes"] if "uploads" in v]
    assert "static:/app/proj/staticfiles:ro" in services["web"]["volumes"]
    assert services["web"]["environment"]["WSGISTACK_SERVER__STATIC"] == "/static/=/app/proj/staticfiles"
    assert {"uploads", "static", "socket"} <= set(split["volumes"])
    single = yaml.safe_load(render_compose(facts, ComposeOptions(image="img")).content)
    assert single["services"]["web"]["volumes"] == ["uploads:/app/proj/uploads"]


def test_the_run_it_line_fits_the_engine_host_networking_without_a_bridge() -> None:
    """Issue 21: `-p 8080:8080` publishes nothing on an engine without a bridge network (the
    container came up healthy and no request reached it); there the line uses the host's network."""
    from wsgistack.plan.image import run_command

    without = run_command("shop", "shop-data", bridge=False)
    assert without == "docker run --rm --network host -e PORT=8080 -v shop-data:/data shop"
    assert "-p " not in without
    for bridge in (True, None):  # a bridge, or no engine answered: the usual form
        assert run_command("shop", "shop-data", bridge=bridge) == \
            "docker run --rm -e PORT=8080 -p 8080:8080 -v shop-data:/data shop"
