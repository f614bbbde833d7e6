"""run.E004: the user uWSGI drops to must be able to read the app's interpreter and the app."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.conftest import worker_user
from wsgistack.app.access import check_user_can_run
from wsgistack.errors import WsgistackError


@pytest.mark.skipif(os.geteuid() != 0 or worker_user() is None, reason="needs root and an unprivileged user")
def test_an_interpreter_under_a_private_directory_is_refused_before_start() -> None:
    user = worker_user()
    assert user is not None
    with tempfile.TemporaryDirectory(prefix="wst-access-", dir="/tmp") as name:
        base = Path(name)
        base.chmod(0o755)
        app = base / "app"
        app.mkdir()
        private = base / "root-home"
        (private / "lib" / "site-packages").mkdir(parents=True)
        private.chmod(0o700)
        public = base / "venv" / "lib" / "site-packages"
        public.mkdir(parents=True)
        check_user_can_run(user, [str(public)], app)  # readable: no error
        with pytest.raises(WsgistackError) as exc:
            check_user_can_run(user, [str(public), str(private / "lib" / "site-packages")], app)
        assert exc.value.id == "run.E004" and str(private) in exc.value.message
