"""docker build failures as errors with ids and hints (image/build.py): the failing step is
the one that ran last, however much pip printed after its step line (issue 21 item 3)."""

from __future__ import annotations

from wsgistack.image.build import MISSING_BUILD_TOOLS, _failure

PIP_STEP = "RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements/requirements.txt"


def test_a_requirements_failure_is_e006_though_pip_printed_more_than_the_tail() -> None:
    tail = [f"  Downloading package{i}-1.0.tar.gz" for i in range(40)] + ["error: metadata-generation-failed"]
    err = _failure(tail, 1, PIP_STEP, {"pg_config executable not found"})
    assert err.id == "docker.E006"
    for flag in ("--build-package gcc", "--build-package python3-dev", "--build-package libpq-dev", "--package libpq5"):
        assert flag in err.hint, err.hint
    assert '[image] build_packages = ["gcc", "python3-dev", "libpq-dev"], packages = ["libpq5"]' in err.hint


def test_e006_without_a_known_signature_still_names_python3_dev() -> None:
    err = _failure(["error"], 1, PIP_STEP, set())
    assert err.id == "docker.E006" and "--build-package gcc --build-package python3-dev" in err.hint
    # a step line in the tail is still found when the caller knows none
    assert _failure([f"Step 9/30 : {PIP_STEP}", "boom"], 1).id == "docker.E006"


def test_the_signatures_name_what_they_need() -> None:
    assert all(sig and build for sig, build, _runtime in MISSING_BUILD_TOOLS)
    err = _failure(["x"], 1, "RUN cp -a /app /tmp/project && /opt/venv/bin/pip install --no-deps /tmp/project",
                   {"Python.h: No such file"})
    assert err.id == "docker.E006" and "python3-dev" in err.hint


def test_build_flags_are_settings_a_plain_rebuild_keeps(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """[image] in wsgistack.toml holds what the flags give; a flag replaces it for one build."""
    from click.testing import CliRunner

    from wsgistack.cli import main

    (tmp_path / "requirements.txt").write_text("Django\n")
    (tmp_path / "wsgistack.toml").write_text(
        '[image]\nbuild_packages = ["gcc", "python3-dev", "libpq-dev"]\npackages = ["libpq5"]\nwritable = ["var/uploads"]\n')
    plain = CliRunner().invoke(main, ["dockerfile", str(tmp_path), "--no-detect", "--stdout"])
    assert plain.exit_code == 0, plain.output
    assert "python3-venv binutils gcc python3-dev libpq-dev" in plain.stdout
    assert "python3 nginx libpq5" in plain.stdout and "/app/var/uploads" in plain.stdout
    flagged = CliRunner().invoke(main, ["dockerfile", str(tmp_path), "--no-detect", "--stdout", "--build-package", "gcc"])
    assert "python3-venv binutils gcc \\" in flagged.stdout and "libpq-dev" not in flagged.stdout.split("FROM")[1]
    bad = CliRunner().invoke(main, ["dockerfile", str(tmp_path), "--no-detect", "--stdout", "--package", "Not A Package"])
    assert bad.exit_code == 2 and "config.E001" in bad.output and "image.packages" in bad.output
