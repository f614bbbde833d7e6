"""What an unprivileged user can reach: checked before we start anything as that user.

Started as root, wsgistack runs uWSGI, nginx's workers, prestart steps and the app probe as
an unprivileged user; a path under a 0700 directory (pyenv or a checkout in /root) would
otherwise fail later as an obscure 502, 403 or ImportError.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from wsgistack import ids
from wsgistack.errors import WsgistackError


def unreachable_ancestor(path: Path, user: str) -> Path | None:
    """The first directory above ``path`` that ``user`` cannot traverse, or None.

    nginx workers run as an unprivileged user when we are root; a socket or static file
    under a 0700 directory (say /root or pytest's tmp) is then a 502 or 403 at request time.
    """
    import grp
    import pwd
    import stat

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    groups = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    for parent in [*reversed(path.parents)]:
        try:
            st = parent.stat()
        except OSError:
            return None
        if st.st_uid == entry.pw_uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid in groups:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            return parent
    return None


def check_user_can_run(user: str, import_dirs: Sequence[str], app_path: Path) -> None:
    """Refuse to start when uWSGI, once dropped to its unprivileged user, could not read its
    own Python or the app: otherwise the start fails later with an obscure ImportError
    (a pyenv or a venv under /root, which is mode 700, is the usual case). ``import_dirs``:
    the stdlib and site-packages the app's interpreter reported (wsgistack.standalone.pyfacts)."""
    needed = [*(Path(d) / "__init__.py" for d in import_dirs), app_path / "."]
    for path in needed:
        blocked = unreachable_ancestor(path, user)
        if blocked is not None:
            raise WsgistackError(
                ids.RUN_E004,
                f"uWSGI runs as {user!r} (started as root), which cannot read {path.parent}: "
                f"{blocked} is not searchable by it (mode {blocked.stat().st_mode & 0o777:o})",
                "install the app and its virtualenv where that user can read them (e.g. "
                "/usr/bin/python3 -m venv /opt/venv, not a Python under /root), set user to an account "
                'that can, or start wsgistack as that user; user = "root" keeps uWSGI as root (not recommended)',
            )
