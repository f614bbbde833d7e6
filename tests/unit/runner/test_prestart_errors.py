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
