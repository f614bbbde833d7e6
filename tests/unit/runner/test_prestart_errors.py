"""Prestart failures a read-only code directory causes come with their fix (issue 9)."""

from __future__ import annotations

from pathlib import Path

from wsgistack.start.prestart import _known_failure


def test_unable_to_open_database_file_points_at_the_data_dir(tmp_path: Path) -> None:
    out = "Traceback ...\ndjango.db.utils.OperationalError: unable to open database file"
    err = _known_failure("migrate", out, tmp_path, "app")
    assert err is not None and err.id == "prestart.E003"
    assert "$DATA_DIR" in err.hint and "-v myapp-data:/data" in err.hint


def test_permission_denied_inside_the_project_names_writable(tmp_path: Path) -> None:
    (tmp_path / "uploads" / "cache").mkdir(parents=True)
    out = f"PermissionError: [Errno 13] Permission denied: '{tmp_path}/uploads/cache/x.bin'"
    err = _known_failure("collectstatic + migrate", out, tmp_path, "app")
    assert err is not None and err.id == "prestart.E004"
    assert "wsgistack build --writable uploads/cache" in err.hint
    elsewhere = "PermissionError: [Errno 13] Permission denied: '/etc/x'"
    assert _known_failure("migrate", elsewhere, tmp_path, "app") is None


def test_in_the_image_a_write_error_names_the_writable_dir_relative_to_the_project(tmp_path: Path) -> None:
    """Issue 21 item 4: app.path = proj: run.E005 in the image says --writable proj/static
    (relative to the build context, the project), never chown."""
    import dataclasses

    from wsgistack.app.spec import AppSpec
    from wsgistack.contracts import BuildRecord
    from wsgistack.start.runtime import _in_image_hint

    class Plan:  # the two fields _in_image_hint reads
        pass

    plan = Plan()
    plan.project = tmp_path  # type: ignore[attr-defined]
    plan.build = BuildRecord(app="x:y")  # type: ignore[attr-defined]
    plan.app = dataclasses.replace(AppSpec(kind="django", module="m", attr="a", path=tmp_path / "proj"))  # type: ignore[attr-defined]
    hint = _in_image_hint(plan, [tmp_path / "proj" / "static"])  # type: ignore[arg-type]
    assert hint is not None and "--writable proj/static" in hint and "chown" not in hint.replace("chown cannot help", "")
    assert '[image] writable = ["proj/static"]' in hint


def test_the_data_dir_database_line_says_what_it_imports(tmp_path: Path) -> None:
    """Issue 21 (Wagtail's template): its settings import only Path, so the hint's line pasted
    as it was failed with a NameError on `os`. Every hint that gives the line says to import it."""
    import dataclasses

    from wsgistack.app.spec import AppSpec
    from wsgistack.contracts import BuildRecord
    from wsgistack.start.runtime import _in_image_hint

    class Plan:  # the fields _in_image_hint reads
        pass

    plan = Plan()
    plan.project = tmp_path  # type: ignore[attr-defined]
    plan.build = BuildRecord(app="x:y")  # type: ignore[attr-defined]
    plan.app = dataclasses.replace(AppSpec(kind="django", module="m", attr="a", path=tmp_path),  # type: ignore[attr-defined]
                                   writes=(tmp_path,))
    image = _in_image_hint(plan, [tmp_path])  # type: ignore[arg-type]
    prestart = _known_failure("migrate", "OperationalError: unable to open database file", tmp_path, "app")
    assert prestart is not None
    for hint in (image, prestart.hint):
        assert hint is not None and "os.environ.get('DATA_DIR', BASE_DIR)" in hint
        assert "import os" in hint and "from pathlib import Path" in hint
