"""wsgistack as users install it: a wheel, with pipx, into an environment of its own."""

from __future__ import annotations

import json

from tests.userpaths.conftest import Install


def test_pipx_installs_the_wheel_into_its_own_environment(installed: Install) -> None:
    (dist,) = installed.venv.glob("lib/python3*/site-packages/wsgistack-*.dist-info")
    direct = json.loads((dist / "direct_url.json").read_text())
    assert direct["url"].startswith("file:") and direct["url"].endswith(".whl"), direct
    assert not direct.get("dir_info", {}).get("editable"), direct  # never editable
    (package,) = installed.venv.glob("lib/python3*/site-packages/wsgistack/__init__.py")
    assert package.is_file()  # the code is in pipx's venv, not in the checkout
    out = installed.run("--version", cwd=installed.owner.home, check=True)
    assert "0.1.0" in out.stdout, out.stdout + out.stderr
