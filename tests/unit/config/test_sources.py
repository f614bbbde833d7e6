"""Precedence (defaults < file < env < CLI), aliases, origins and error reporting."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsgistack.config import load_config
from wsgistack.config.sources import parse_env_value
from wsgistack.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_when_nothing_is_set(tmp_path: Path) -> None:
    loaded = load_config(tmp_path, env={})
    assert loaded.config.server.port == 8000
    assert loaded.config.uwsgi.processes == "auto"
    assert loaded.config_file is None
    assert str(loaded.origin("server.port")) == "default"


def test_file_beats_default(tmp_path: Path) -> None:
    write(tmp_path / "wsgistack.toml", "[server]\nport = 9001\n")
    loaded = load_config(tmp_path, env={})
    assert loaded.config.server.port == 9001
    assert str(loaded.origin("server.port")) == "wsgistack.toml"


def test_pyproject_tool_table_is_read(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[project]\nname='x'\n[tool.wsgistack.uwsgi]\nthreads = 4\n")
    loaded = load_config(tmp_path, env={})
    assert loaded.config.uwsgi.threads == 4
    assert str(loaded.origin("uwsgi.threads")) == "pyproject.toml [tool.wsgistack]"


def test_two_config_files_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "wsgistack.toml", "[server]\nport = 9001\n")
    write(tmp_path / "pyproject.toml", "[tool.wsgistack.server]\nport = 9002\n")
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, env={})
    assert exc.value.id == "config.E007"


def test_env_beats_file(tmp_path: Path) -> None:
    write(tmp_path / "wsgistack.toml", "[server]\nport = 9001\n")
    loaded = load_config(tmp_path, env={"WSGISTACK_SERVER__PORT": "9002"})
    assert loaded.config.server.port == 9002
    assert loaded.origin("server.port").where == "env WSGISTACK_SERVER__PORT"


def test_cli_beats_env(tmp_path: Path) -> None:
    loaded = load_config(tmp_path, env={"PORT": "9002"}, cli={"server.port": ("9003", "--port")})
    assert loaded.config.server.port == 9003
    assert str(loaded.origin("server.port")) == 'CLI --port="9003"'


def test_cli_none_means_not_given(tmp_path: Path) -> None:
    loaded = load_config(tmp_path, env={"PORT": "9002"}, cli={"server.port": (None, "--port")})
    assert loaded.config.server.port == 9002


def test_heroku_port_alias(tmp_path: Path) -> None:
    loaded = load_config(tmp_path, env={"PORT": "5000"})
    assert loaded.config.server.port == 5000
    assert loaded.origin("server.port").where == "env PORT"


def test_port_beats_listen_port(tmp_path: Path) -> None:
    loaded = load_config(tmp_path, env={"PORT": "5000", "LISTEN_PORT": "6000"})
    assert loaded.config.server.port == 5000


def test_wsgistack_variable_beats_alias(tmp_path: Path) -> None:
    loaded = load_config(tmp_path, env={"PORT": "5000", "WSGISTACK_SERVER__PORT": "5001"})
    assert loaded.config.server.port == 5001


def test_specific_alias_beats_generic(tmp_path: Path) -> None:
    loaded = load_config(tmp_path, env={"WEB_CONCURRENCY": "3", "UWSGI_PROCESSES": "5"})
    assert loaded.config.uwsgi.processes == 5
    assert loaded.origin("uwsgi.processes").where == "env UWSGI_PROCESSES"


def test_web_concurrency_alone(tmp_path: Path) -> None:
    assert load_config(tmp_path, env={"WEB_CONCURRENCY": "3"}).config.uwsgi.processes == 3


def test_empty_alias_is_unset(tmp_path: Path) -> None:
    assert load_config(tmp_path, env={"PORT": ""}).config.server.port == 8000


def test_seed_aliases(tmp_path: Path) -> None:
    loaded = load_config(
        tmp_path,
        env={"NGINX_SERVER_NAME": "example.com www.example.com", "UWSGI_URI": "wdjango:29000", "UWSGI_THREADS": "2"},
    )
    assert loaded.config.server.server_names == ("example.com", "www.example.com")
    assert loaded.config.uwsgi.uri == "wdjango:29000"
    assert loaded.config.uwsgi.threads == 2


def test_env_lists_and_mappings(tmp_path: Path) -> None:
    loaded = load_config(
        tmp_path,
        env={
            "WSGISTACK_SERVER__STATIC": "/assets/=/srv/assets,/dl/=/srv/dl",
            "WSGISTACK_SERVER__TRUSTED_PROXIES": "10.0.0.0/8 127.0.0.1",
            "WSGISTACK_APP__ENV": "A=1,B=two",
        },
    )
    assert [(m.url, str(m.dir)) for m in loaded.config.server.static] == [("/assets/", "/srv/assets"), ("/dl/", "/srv/dl")]
    assert loaded.config.server.trusted_proxies == ("10.0.0.0/8", "127.0.0.1")
    assert loaded.config.app.env == {"A": "1", "B": "two"}


def test_prestart_from_env_splits_on_semicolons() -> None:
    assert parse_env_value("app.prestart", "python manage.py check; echo done") == ["python manage.py check", "echo done"]


def test_bad_env_value_names_field_source_and_hint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, env={"WSGISTACK_UWSGI__PROCESSES": "many"})
    err = exc.value
    assert err.id == "config.E001"
    assert "uwsgi.processes" in err.message
    assert 'env WSGISTACK_UWSGI__PROCESSES="many"' in err.message
    assert err.hint
    assert err.exit_code == 2


def test_bad_file_value_names_the_file(tmp_path: Path) -> None:
    write(tmp_path / "wsgistack.toml", "[uwsgi]\nthreads = 0\n")
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, env={})
    assert "uwsgi.threads (from wsgistack.toml)" in exc.value.message


def test_bad_cli_value_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, env={}, cli={"server.port": ("http", "--port")})
    assert 'CLI --port="http"' in exc.value.message


def test_unknown_file_key_suggests_the_right_one(tmp_path: Path) -> None:
    write(tmp_path / "wsgistack.toml", "[uwsgi]\nprocesess = 2\n")
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, env={})
    assert exc.value.id == "config.E002"
    assert "uwsgi.processes" in exc.value.hint


@pytest.mark.parametrize(
    ("text", "key"),
    # ([processes] was the example of an unknown table until background processes used it.)
    [("workers = 4\n", "workers"), ("[workers]\nweb = 2\n", "workers"), ("[uwsgi.worker]\nx = 1\n", "uwsgi.worker")],
)
def test_unknown_file_key_names_the_file(tmp_path: Path, text: str, key: str) -> None:
    # An unknown table used to be reported as coming from "default".
    write(tmp_path / "wsgistack.toml", text)
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, env={})
    assert exc.value.message == f"unknown setting {key} (in wsgistack.toml)"


def test_top_level_processes_as_a_number_points_to_uwsgi_processes(tmp_path: Path) -> None:
    # Issue 16's example, `processes = 4` at the top: [processes] is the background processes'
    # table now, so it is not unknown; the hint says where the worker count goes.
    write(tmp_path / "wsgistack.toml", "processes = 4\n")
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, env={})
    assert "processes (from wsgistack.toml)" in exc.value.message
    assert "[uwsgi] processes" in exc.value.hint


def test_a_missing_config_file_is_an_error_with_an_id(tmp_path: Path) -> None:
    # `--config nope.toml` was click's own "Invalid value" usage error, without an id or hint.
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, env={}, config_file=tmp_path / "nope.toml")
    assert exc.value.id == "config.E004" and exc.value.exit_code == 2
    assert "nope.toml does not exist" in exc.value.message and "--config" in exc.value.hint


def test_every_unknown_top_level_key_is_reported(tmp_path: Path) -> None:
    write(tmp_path / "wsgistack.toml", "workers = 4\n[bogus]\nx = 1\n")
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, env={})
    assert [p.message for p in exc.value.problems] == [
        "unknown setting workers (in wsgistack.toml)",
        "unknown setting bogus (in wsgistack.toml)",
    ]


def test_unknown_env_variable_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, env={"WSGISTACK_UWSGI__PROCESESS": "2"})
    assert exc.value.id == "config.E003"
    assert "did you mean uwsgi.processes" in exc.value.hint


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, env={"PORT": "0", "WSGISTACK_UWSGI__THREADS": "x"})
    assert {p.message.split(" ")[0] for p in exc.value.problems} == {"server.port", "uwsgi.threads"}


def test_invalid_toml_is_reported(tmp_path: Path) -> None:
    write(tmp_path / "wsgistack.toml", "[server\nport = 1\n")
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, env={})
    assert exc.value.id == "config.E004"


def test_web_role_requires_upstream(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, env={"WSGISTACK_ROLE": "web"})
    assert exc.value.id == "config.E005"
    assert "UWSGI_URI" in exc.value.hint


def test_zero_upload_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, env={"NGINX_MAX_UPLOAD": "0"})
    assert "finite" in exc.value.message


@pytest.mark.parametrize("target", ["mysite.wsgi", "mysite.wsgi:application", "app:create_app()", "auto"])
def test_valid_targets(tmp_path: Path, target: str) -> None:
    assert load_config(tmp_path, env={}, cli={"app.target": (target, "--app")}).config.app.target == target


@pytest.mark.parametrize("target", ["my site", "app:", ":app", "app:create_app(1)"])
def test_invalid_targets(tmp_path: Path, target: str) -> None:
    with pytest.raises(ConfigError):
        load_config(tmp_path, env={}, cli={"app.target": (target, "--app")})


def test_static_url_is_normalised_and_root_refused(tmp_path: Path) -> None:
    write(tmp_path / "wsgistack.toml", '[[server.static]]\nurl = "/assets"\ndir = "public"\n')
    assert load_config(tmp_path, env={}).config.server.static[0].url == "/assets/"
    write(tmp_path / "wsgistack.toml", '[[server.static]]\nurl = "/"\ndir = "public"\n')
    with pytest.raises(ConfigError):
        load_config(tmp_path, env={})


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(tmp_path, env={}).config
    with pytest.raises(Exception):
        config.server.port = 1  # type: ignore[misc]


def test_heroku_dyno_sets_the_platform(tmp_path: Path) -> None:
    loaded = load_config(tmp_path, env={"DYNO": "web.1"})
    assert loaded.config.platform == "heroku"
    assert loaded.origin("platform").where == "env DYNO"
    assert load_config(tmp_path, env={"DYNO": "web.1", "WSGISTACK_PLATFORM": "none"}).config.platform == "none"


def test_project_dir_variable_is_not_a_setting(tmp_path: Path) -> None:
    assert load_config(tmp_path, env={"WSGISTACK_PROJECT_DIR": "/app"}).config.role == "all"


def test_tls_settings_and_their_cross_checks(tmp_path: Path) -> None:
    from wsgistack.config.sources import describe

    loaded = load_config(tmp_path, env={"WSGISTACK_TLS__PORT": "9443"}, cli={"tls.mode": ("self-signed", "--tls")})
    assert (loaded.config.tls.mode, loaded.config.tls.port) == ("self-signed", 9443)
    rows = {row[0]: row for row in describe(loaded)}
    assert rows["tls.port"][2] == 'env WSGISTACK_TLS__PORT="9443"' or "WSGISTACK_TLS__PORT" in rows["tls.port"][2]
    assert rows["tls.mode"][2].startswith("CLI --tls")
    for key in ("tls.email", "tls.cert", "tls.key", "tls.directory", "tls.staging", "tls.hsts", "tls.hsts_max_age", "tls.data_dir"):
        assert key in rows, key
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, env={"WSGISTACK_TLS__MODE": "files", "WSGISTACK_TLS__CERT": "/c.pem"})
    assert exc.value.id == "config.E012" and "needs tls.key" in exc.value.message
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, env={"WSGISTACK_TLS__MODE": "self-signed", "WSGISTACK_ROLE": "app"})
    assert exc.value.id == "config.E013"
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, env={"WSGISTACK_TLS__MODE": "acme", "WSGISTACK_SERVER__SERVER_NAMES": "*.example.com"})
    assert exc.value.id == "config.E014"
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, env={"WSGISTACK_TLS__MODE": "self-signed", "PORT": "8443"})
    assert exc.value.id == "config.E015" and "(from env PORT" in exc.value.message
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, env={"WSGISTACK_TLS__MODE": "https"})
    assert "tls.mode" in exc.value.render()

def test_background_processes_from_file_and_env(tmp_path: Path) -> None:
    write(tmp_path / "wsgistack.toml", '[processes.sendalerts]\ncommand = "python manage.py sendalerts"\n')
    loaded = load_config(tmp_path, env={"WSGISTACK_PROCESSES__SENDALERTS__COUNT": "2",
                                        "WSGISTACK_PROCESSES__RQ__COMMAND": "rq worker", "WSGISTACK_PROCESSES__RQ__RESTART": "never"})
    procs = loaded.config.processes
    assert procs["sendalerts"].command == "python manage.py sendalerts" and procs["sendalerts"].count == 2
    assert procs["rq"].restart == "never" and procs["rq"].stop_signal == "TERM"
    assert str(loaded.origin("processes.sendalerts.command")) == "wsgistack.toml"
    assert loaded.origin("processes.sendalerts.count").where == "env WSGISTACK_PROCESSES__SENDALERTS__COUNT"


def test_a_background_process_may_take_longer_to_stop_than_the_requests(tmp_path: Path) -> None:
    # Issue 24: a queue worker finishing a 30 s job stops beside nginx, on its own budget
    # (the orchestrators' grace follows, plan/stop.py); it used to be refused (over stop_timeout).
    write(tmp_path / "wsgistack.toml", '[processes.rq]\ncommand = "rq worker"\nstop_timeout = 35\n')
    config = load_config(tmp_path, env={}).config
    assert config.processes["rq"].stop_timeout == 35 and config.stop_timeout == 8


@pytest.mark.parametrize(
    ("text", "env", "expect"),
    [
        ("[processes.web]\n", {}, "processes.web.command (from wsgistack.toml): Field required"),
        ('[processes.web]\ncommand = "x"\ncomand = "y"\n', {}, "unknown setting processes.web.comand"),
        ("", {"WSGISTACK_PROCESSES__WEB__COMAND": "x"}, "unknown setting WSGISTACK_PROCESSES__WEB__COMAND"),
        ('[processes.nginx]\ncommand = "x"\n', {}, "processes (from wsgistack.toml): 'nginx' is a name wsgistack uses itself"),
        ('[processes.Bad]\ncommand = "x"\n', {}, "'Bad' is not a process name"),
        ('[processes.web]\ncommand = "x \'unclosed"\n', {}, "cannot split"),
        ('[processes.jobs]\ncommand = "x"\nstop_timeout = 301\n', {}, "processes.jobs.stop_timeout"),
        ('[processes.jobs]\ncommand = "x"\n', {"WSGISTACK_ROLE": "worker", "WSGISTACK_PROCESS": "other"}, "names none of [processes.*] (jobs)"),
    ],
)
def test_background_process_errors(tmp_path: Path, text: str, env: dict[str, str], expect: str) -> None:
    write(tmp_path / "wsgistack.toml", text)
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, env=env)
    assert expect in exc.value.render()


def test_procfiles_usual_worker_name_is_a_background_process() -> None:
    """Issue 21 (extra 1): [processes.worker] is Procfile's usual name: accepted; the names of
    the stack's own processes and containers stay refused."""
    from wsgistack.config import load_config
    from wsgistack.errors import ConfigError

    loaded = load_config(Path("/nonexistent"), env={"WSGISTACK_PROCESSES__WORKER__COMMAND": "python manage.py rqworker"})
    assert loaded.config.processes["worker"].command == "python manage.py rqworker"
    for taken in ("web", "ops", "acme"):
        with pytest.raises(ConfigError):
            load_config(Path("/nonexistent"), env={f"WSGISTACK_PROCESSES__{taken.upper()}__COMMAND": "x"})


def test_absurd_sizes_are_refused_at_load_with_the_setting_named(tmp_path: Path) -> None:
    """A typo must not reach the machine: 1e26 workers (TOML's float, which pydantic takes as
    an int) or 100000 nginx workers are refused, each naming its setting and where it came from."""
    (tmp_path / "wsgistack.toml").write_text("[uwsgi]\nprocesses = 1e18\n[server]\nworker_processes = 100000\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, env={"WSGISTACK_BALANCER__MAXCONN": "1000000", "WSGISTACK_UWSGI__LISTEN": "100000"})
    text = caught.value.render()
    for needle in ("uwsgi.processes (from wsgistack.toml): must be a whole number between 1 and 1024",
                   "server.worker_processes (from wsgistack.toml): must be between 1 and 1024",
                   'balancer.maxconn (from env WSGISTACK_BALANCER__MAXCONN="1000000"): must be between 0',
                   "uwsgi.listen (from env WSGISTACK_UWSGI__LISTEN=\"100000\"): must be between 1 and 65535"):
        assert needle in text, text
    assert {p.id for p in caught.value.problems} == {"config.E001"}
    (tmp_path / "wsgistack.toml").write_text("[uwsgi]\nprocesses = 1e26\n[server]\nworker_processes = 2.5\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, env={})
    text = caught.value.render()
    assert "uwsgi.processes (from wsgistack.toml): must be a whole number between 1 and 1024" in text, text
    assert "server.worker_processes (from wsgistack.toml): must be a whole number between 1 and 1024" in text, text
