"""Credentials are shown to nobody who did not ask (issue 20, item 3). These tests play the
person looking over the owner's shoulder, the CI log and the support ticket: every format of
`wsgistack config`, every error message a bad value gives, the reload's change lines and notes,
the status page's summary. Each secret is a distinct string that must appear in none of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from wsgistack.cli import main
from wsgistack.config import load_config
from wsgistack.config.record import Change, Recorded, changes, record
from wsgistack.config.sources import MASK, SECRET, SENSITIVE, Origin
from wsgistack.errors import ConfigError

FILE_PW, ENV_PW, APP_PW, DB_PW, STATS_PW = "filepw-Zq81", "envpw-Xk27", "sk-Yr55", "dbpw-Wm93", "statpw-Vn46"
SECRETS = (FILE_PW, ENV_PW, APP_PW, DB_PW, STATS_PW)


def test_the_model_marks_every_credential_once() -> None:
    assert SENSITIVE == {"app.env", "ops.basic_auth", "balancer.stats_auth"}
    assert SECRET == {"app.env"}  # never recorded; the auth settings are recorded (0600) for reload


def project(tmp_path: Path) -> Path:
    (tmp_path / "hello.py").write_text("def application(environ, start_response):\n    pass\n")
    (tmp_path / "wsgistack.toml").write_text(
        f'[app]\ntarget = "hello:application"\nenv = {{SECRET_KEY = "{APP_PW}"}}\n'
        f'[ops]\nport = 9100\nbasic_auth = "ops:{FILE_PW}"\n'
        f'[balancer]\nstats_auth = "stats:{STATS_PW}"\n'
    )
    return tmp_path


def config_cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(main, ["config", str(project(tmp_path)), *args], env=env or {}, catch_exceptions=False)
    return result.output


@pytest.mark.parametrize("args", [(), ("--origin",), ("--json",)])
def test_config_in_every_format_masks_every_secret(tmp_path: Path, args: tuple[str, ...]) -> None:
    for env in ({}, {"WSGISTACK_APP__ENV": f"SECRET_KEY={APP_PW},DATABASE_URL=mysql://u:{DB_PW}@db/x",
                     "WSGISTACK_OPS__BASIC_AUTH": f"ops:{ENV_PW}"}):
        shown = config_cli(tmp_path, *args, env=env)
        assert "ops.basic_auth" in shown or "basic_auth" in shown, shown
        for secret in SECRETS:
            assert secret not in shown, (args, env, secret)
        assert MASK in shown
        # What the owner needs stays: which variables app.env sets, and the users.
        assert "SECRET_KEY" in shown and "ops:" in shown and "stats:" in shown
        if env and "--origin" in args:
            assert "env WSGISTACK_OPS__BASIC_AUTH" in shown and "env WSGISTACK_APP__ENV" in shown


def test_json_stays_json_with_keys_and_users(tmp_path: Path) -> None:
    data = json.loads(config_cli(tmp_path, "--json"))
    assert data["app"]["env"] == {"SECRET_KEY": MASK}
    assert data["ops"]["basic_auth"] == f"ops:{MASK}" and data["balancer"]["stats_auth"] == f"stats:{MASK}"
    assert data["ops"]["port"] == 9100  # nothing else is touched


def test_show_secrets_shows_them_to_the_owner_who_asks(tmp_path: Path) -> None:
    for args in (("--show-secrets",), ("--origin", "--show-secrets"), ("--json", "--show-secrets")):
        shown = config_cli(tmp_path, *args, env={"WSGISTACK_OPS__BASIC_AUTH": f"ops:{ENV_PW}"})
        for secret in (ENV_PW, APP_PW, STATS_PW):
            assert secret in shown, (args, secret)
    origin = config_cli(tmp_path, "--origin", "--show-secrets", env={"WSGISTACK_OPS__BASIC_AUTH": f"ops:{ENV_PW}"})
    assert f'env WSGISTACK_OPS__BASIC_AUTH="ops:{ENV_PW}"' in origin


# Bad values of each credential, from the file and from the environment: every message,
# hint and detail of every error masks them.
BAD_ENV = [
    {"WSGISTACK_OPS__BASIC_AUTH": f"no-colon-{ENV_PW}"},
    {"WSGISTACK_OPS__BASIC_AUTH": f":{ENV_PW}"},
    {"WSGISTACK_BALANCER__STATS_AUTH": f"a b:{ENV_PW}"},
    {"WSGISTACK_BALANCER__STATS_AUTH": f'u:"{ENV_PW}"'},
    {"WSGISTACK_APP__ENV": f"SECRET_KEY={APP_PW},{DB_PW}"},  # a comma inside a value: a fragment without =
    {"WSGISTACK_APP__ENV": f"{ENV_PW}"},
    {"WSGISTACK_APP__ENV": f'{{"SECRET_KEY": "{APP_PW}", '},  # broken JSON
    {"WSGISTACK_APP__ENV": f'{{"1 bad": "{APP_PW}"}}', "WSGISTACK_UWSGI__PROCESSES": "lots"},
]
BAD_FILE = [
    f'[ops]\nbasic_auth = "{FILE_PW}"\n',
    f'[ops]\nbasic_auth = ["{FILE_PW}"]\n',
    f'[balancer]\nstats_auth = "x y:{FILE_PW}"\n',
    f'[app]\nenv = {{SECRET_KEY = 42, OTHER = "{FILE_PW}"}}\n',
    f'[app]\nenv = "{FILE_PW}"\n',
    f'[ops]\nbasic_auth = "ops:{FILE_PW}"\nbasic_auht = "ops:{FILE_PW}"\n',
    f'[ops]\nbasic_auth = "ops:{FILE_PW}"\nport = "x"\n[uwsgi]\nprocesses = 0\n',
]


def _every_text(exc: ConfigError) -> str:
    return "\n".join([exc.render(), *(f"{p.message}\n{p.hint}\n{p.details}" for p in exc.problems)])


@pytest.mark.parametrize("env", BAD_ENV)
def test_errors_from_the_environment_mask_every_secret(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, env=env)
    text = _every_text(caught.value)
    assert "config.E001" in text
    for secret in SECRETS:
        assert secret not in text, text


@pytest.mark.parametrize("toml", BAD_FILE)
def test_errors_from_the_file_mask_every_secret(tmp_path: Path, toml: str) -> None:
    (tmp_path / "wsgistack.toml").write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, env={})
    text = _every_text(caught.value)
    for secret in SECRETS:
        assert secret not in text, text


def test_an_error_from_the_cli_shows_where_but_not_the_secret(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["config", str(tmp_path)], env={"WSGISTACK_OPS__BASIC_AUTH": ENV_PW})
    assert result.exit_code == 2
    assert "error[config.E001]: ops.basic_auth (from env WSGISTACK_OPS__BASIC_AUTH)" in result.output
    assert ENV_PW not in result.output


def test_a_non_sensitive_setting_still_shows_what_was_typed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, env={"WSGISTACK_UWSGI__PROCESSES": "lots"})
    assert 'env WSGISTACK_UWSGI__PROCESSES="lots"' in caught.value.render()


def test_reload_change_lines_mask_the_credentials(tmp_path: Path) -> None:
    (tmp_path / "wsgistack.toml").write_text(f'[ops]\nbasic_auth = "ops:{FILE_PW}"\n')
    before = record(load_config(tmp_path, env={}))
    (tmp_path / "wsgistack.toml").write_text(f'[ops]\nbasic_auth = "admin:{ENV_PW}"\n')
    lines = [str(c) for c in changes(before, load_config(tmp_path, env={}))]
    assert lines == [f"ops.basic_auth: ops:{MASK} -> admin:{MASK} (wsgistack.toml)"]
    # Only the password changed: the line still says something changed, and shows neither.
    same_user = Change("ops.basic_auth", f"ops:{FILE_PW}", f"ops:{ENV_PW}", Origin("file", "wsgistack.toml"))
    assert FILE_PW not in str(same_user) and ENV_PW not in str(same_user) and "changed" in str(same_user)
    # From the environment (the recorded origin of a started stack): where, not what.
    env_origin = Change("ops.basic_auth", "", f"ops:{ENV_PW}",
                        Origin("env", "env WSGISTACK_OPS__BASIC_AUTH", f"ops:{ENV_PW}", sensitive=True))
    assert ENV_PW not in str(env_origin)


def test_a_recorded_origin_stays_masked_when_read_back(tmp_path: Path) -> None:
    from wsgistack.config import record as record_mod
    from wsgistack.layout import Paths

    paths = Paths(tmp_path / "rt")
    paths.state.mkdir(parents=True, mode=0o700)
    (tmp_path / "rt").chmod(0o700)
    loaded = load_config(tmp_path, env={"WSGISTACK_OPS__BASIC_AUTH": f"ops:{ENV_PW}"})
    record_mod.save(paths, loaded)
    found = record_mod.read(paths)
    assert found is not None
    recorded: Recorded = found.recorded
    assert recorded.values["ops.basic_auth"] == f"ops:{ENV_PW}"  # kept for reload, in the 0600 record
    assert ENV_PW not in str(recorded.origins["ops.basic_auth"])


def test_the_status_page_summary_names_no_secret(tmp_path: Path) -> None:
    from wsgistack.machine import detect
    from wsgistack.plan.stack import make_plan
    from wsgistack.render.stack import ops_settings

    loaded = load_config(project(tmp_path), env={"WSGISTACK_APP__ENV": f"SECRET_KEY={APP_PW}"})
    settings = ops_settings(make_plan(loaded, detect(), None))
    text = json.dumps(settings.summary) + settings.text()
    for secret in SECRETS:
        assert secret not in text
