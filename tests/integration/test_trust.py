"""The app's user is hostile: started as root, wsgistack runs the app as an unprivileged user
whose code may be compromised. These tests play that user (and another local user) against a
real stack started as root: they replace, link and fill every file and directory the app's
user can write, then run every root command, and check that nothing ran as root, no signal
reached a process outside the stack, each refusal has an error id, and no secret is readable."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, WSGISTACK, Stack, clean_env, http, shared_dir, start_stack, worker_user

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0 or worker_user() is None, reason="plays the app's user against a stack started as root"),
]

SECRET = "hunter2-7f3a9c"


def as_user(user: str, code: str, cwd: str = "/") -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` as ``user`` (what a compromised app, or another local user, can do)."""
    return subprocess.run(["/usr/bin/python3", "-c", textwrap.dedent(code)], user=user, group=pwd.getpwnam(user).pw_gid,
                          extra_groups=[], capture_output=True, text=True, timeout=30, cwd=cwd)


def root_canary(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """A root process outside the stack that writes down every signal it gets."""
    log = tmp_path / "canary.log"
    code = (
        "import signal, sys, time\n"
        f"def note(n, _f):\n    open({str(log)!r}, 'a').write(signal.Signals(n).name + '\\n')\n"
        "for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):\n"
        "    signal.signal(s, note)\n"
        "while True: time.sleep(0.1)\n"
    )
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True), log


def wsgistack(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WSGISTACK, *args], capture_output=True, text=True, env=env or clean_env(), timeout=120)


def test_nothing_the_app_user_writes_makes_root_act(tmp_path: Path, stacks: list[Stack]) -> None:
    app_user = worker_user()
    assert app_user is not None
    canary, canary_log = root_canary(tmp_path)
    try:
        victim = shared_dir(tmp_path, "victim") / "precious.txt"
        victim.write_text("root's own file\n")
        victim.chmod(0o644)
        pwned = shared_dir(tmp_path, "pwned") / "ran-as-root"
        project = shared_dir(tmp_path, "project")
        shutil.copy(EXAMPLES / "hello" / "hello.py", project / "hello.py")
        (project / "wsgistack.toml").write_text('[app]\ntarget = "hello:application"\n')
        stack = start_stack(tmp_path, project)
        stacks.append(stack)
        rt, private, state = stack.runtime_dir, stack.runtime_dir / "private", stack.runtime_dir / "state"
        assert private.stat().st_uid == pwd.getpwnam(app_user).pw_uid  # the app's own directory
        assert state.stat().st_uid == 0 and state.stat().st_mode & 0o777 == 0o700

        # The app's user: a program that would prove root ran it, and every plant it can make.
        attack = as_user(app_user, f"""
            import json, os
            private, rt, state = {str(private)!r}, {str(rt)!r}, {str(state)!r}
            evil = os.path.join(private, "evil-python")
            open(evil, "w").write("#!/bin/sh\\ntouch {pwned}\\nexec /usr/bin/python3 \\"$@\\"\\n")
            os.chmod(evil, 0o755)
            def plant(name, data):
                path = os.path.join(private, name)
                if os.path.lexists(path):
                    os.unlink(path)
                open(path, "w").write(data)
            plant("app-python.json", json.dumps({{"python": evil, "why": "planted"}}))
            plant("settings.json", json.dumps({{"version": 1, "settings": {{}}}}))
            plant("start.json", json.dumps({{"version": 2, "settings": {{}}, "python": evil}}))
            plant("uwsgi.pid", "{canary.pid}\\n")
            for name, target in (("uwsgi.fifo", {str(victim)!r}), ("stats.sock", {str(victim)!r})):
                path = os.path.join(private, name)
                os.unlink(path)
                os.symlink(target, path)
            refused = []
            for path in (os.path.join(rt, "manager.json"), os.path.join(rt, "processes.json"), os.path.join(rt, "drain"),
                         os.path.join(rt, "nginx.conf"), os.path.join(state, "start.json"), os.path.join(rt, "nginx.pid")):
                try:
                    open(path, "w").write("planted")
                except PermissionError:
                    refused.append(path)
            print(json.dumps(refused))
        """)
        assert attack.returncode == 0, attack.stderr
        assert len(json.loads(attack.stdout)) == 6  # the runtime dir and state/ are root's alone

        rt_args = ["--runtime-dir", str(rt)]
        status = wsgistack("status", str(project), "--json", *rt_args)
        assert status.returncode == 0, status.stderr
        shown = json.loads(status.stdout)
        assert shown["uwsgi_pid"] != canary.pid and shown["uwsgi_pid"]  # from the manager's own state, not the pidfile

        # reload: the FIFO is a link to root's file now: refused, with an id; nothing else done.
        reload = wsgistack("reload", str(project), *rt_args)
        assert reload.returncode != 0 and "trust.E001" in reload.stderr, reload.stdout + reload.stderr
        assert "evil-python" not in (rt / "uwsgi.ini").read_text()

        # The same with the FIFO a regular file the app's user made (not a FIFO: refused).
        as_user(app_user, f"import os; p = {str(private / 'uwsgi.fifo')!r}; os.unlink(p); open(p, 'w').close()")
        reload = wsgistack("reload", str(project), "--no-render", *rt_args)
        assert reload.returncode != 0 and "trust.E001" in reload.stderr, reload.stdout + reload.stderr

        assert wsgistack("drain", str(project), *rt_args).returncode == 0
        assert http(stack.url + "/_wsgistack/ready").status == 503
        assert wsgistack("undrain", str(project), *rt_args).returncode == 0
        assert http(stack.url + "/_wsgistack/ready").status == 200

        # The status page's drain marker (private/drain, the ops listener's, as the app's user)
        # planted as a link to root's file: status does not believe it and says so, undrain
        # removes the link and never touches its target.
        as_user(app_user, f"import os; os.symlink({str(victim)!r}, {str(private / 'drain')!r})")
        status = wsgistack("status", str(project), "--json", *rt_args)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["draining"] is False
        assert "not believed" in status.stderr and "symbolic link" in status.stderr, status.stderr
        assert wsgistack("undrain", str(project), *rt_args).returncode == 0
        assert not os.path.lexists(private / "drain")
        assert stack.stop() == 0  # and a stop

        assert not pwned.exists(), "root ran the app user's program"
        assert victim.read_text() == "root's own file\n"
        time.sleep(0.3)
        assert not canary_log.exists(), f"a signal reached a process outside the stack: {canary_log.read_text()}"
        assert canary.poll() is None
    finally:
        canary.kill()
        canary.wait()


def test_a_runtime_dir_another_user_made_first_is_refused(tmp_path: Path) -> None:
    """The default runtime dir is a name anyone can compute under /tmp: another local user
    who makes it first (a directory of theirs, or a link to one of root's) gets refused."""
    from wsgistack.layout import default_runtime_dir

    app_user = worker_user()
    assert app_user is not None
    project = shared_dir(tmp_path, "project")
    shutil.copy(EXAMPLES / "hello" / "hello.py", project / "hello.py")
    (project / "wsgistack.toml").write_text('[app]\ntarget = "hello:application"\n')
    default = default_runtime_dir(project.resolve(), 0)
    target = shared_dir(tmp_path, "roots")
    entry = pwd.getpwnam(app_user)

    def their_dir() -> None:
        os.mkdir(default, 0o777)
        os.chown(default, entry.pw_uid, entry.pw_gid)

    def their_link() -> None:
        os.symlink(target, default)
        os.lchown(default, entry.pw_uid, entry.pw_gid)

    # Made as root and given to the other user: what they would make themselves in a /tmp
    # anyone may write (1777), without depending on this machine's /tmp mode.
    for plant in (their_dir, their_link):
        plant()
        try:
            out = wsgistack("run", str(project), "--port", "1")
            assert out.returncode != 0 and "run.E007" in out.stderr, out.stdout + out.stderr
            assert oct(target.stat().st_mode & 0o777) == "0o755"  # a link's target is not chmodded
        finally:
            if default.is_symlink():
                default.unlink()
            else:
                shutil.rmtree(default)


def test_no_other_local_user_reads_a_secret(tmp_path: Path, stacks: list[Stack]) -> None:
    env = clean_env(WSGISTACK_APP__ENV=f"SECRET_KEY={SECRET},DATABASE_URL=postgres://u:{SECRET}@db/x",
                    WSGISTACK_OPS__PORT=str(_free_port()), WSGISTACK_OPS__BASIC_AUTH=f"ops:{SECRET}")
    stack = start_stack(tmp_path, EXAMPLES / "hello", env=env)
    stacks.append(stack)
    rt = stack.runtime_dir
    assert http(stack.url + "/hello").status == 200
    # No file anyone but its owner may read holds a secret in clear (the start record, 0600 in
    # the starter's 0700 state dir, keeps ops.basic_auth for `reload`)...
    for path in rt.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_mode & 0o044:
            assert SECRET not in path.read_text(errors="replace"), path
    assert SECRET not in (rt / "processes.json").read_text()
    # ...and another local user reads nothing secret at all (the ops listener's password hash
    # included: 0640, the app's group).
    other = "nobody" if worker_user() != "nobody" else "daemon"
    seen = as_user(other, f"""
        import os
        readable = []
        for root, dirs, files in os.walk({str(rt)!r}):
            for name in files:
                path = os.path.join(root, name)
                try:
                    readable.append((path, open(path, errors="replace").read()))
                except OSError:
                    pass
        print("\\n".join(p for p, text in readable if {SECRET!r} in text or p.endswith("ops.json")))
    """)
    assert seen.returncode == 0, seen.stderr
    assert seen.stdout.strip() == "", seen.stdout
    manager_pid = int(json.loads((rt / "manager.json").read_text())["manager_pid"])
    environ = as_user(other, f"open('/proc/{manager_pid}/environ').read()")
    assert environ.returncode != 0  # the kernel keeps a process's environment to its user and root
    # render --out writes no secret either.
    out = shared_dir(tmp_path, "out")
    rendered = wsgistack("render", str(EXAMPLES / "hello"), "--out", str(out), env=env)
    assert rendered.returncode == 0, rendered.stderr
    for path in out.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path


def _free_port() -> int:
    from tests.conftest import free_port

    return free_port()


def test_the_app_still_gets_its_secrets(tmp_path: Path, stacks: list[Stack]) -> None:
    project = shared_dir(tmp_path, "project")
    (project / "envapp.py").write_text(
        "import os\n"
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [os.environ.get('SECRET_KEY', 'missing').encode()]\n"
    )
    env = clean_env(WSGISTACK_APP__ENV=f"SECRET_KEY={SECRET}")
    stack = start_stack(tmp_path, project, "--app", "envapp:application", env=env, ready_path="/x")
    stacks.append(stack)
    assert http(stack.url + "/x").body == SECRET.encode()
    assert stack.stop(signal.SIGTERM) == 0


def test_run_and_reload_print_no_secret(tmp_path: Path, stacks: list[Stack]) -> None:
    """What a stack prints (its log, a reload's change lines and notes) is read by whoever
    reads the terminal, the journal or the CI log: credentials appear masked, never in clear."""
    project = shared_dir(tmp_path, "project")
    shutil.copy(EXAMPLES / "hello" / "hello.py", project / "hello.py")
    ops_port = _free_port()
    (project / "wsgistack.toml").write_text(f'[app]\ntarget = "hello:application"\n[ops]\nport = {ops_port}\n'
                                            f'basic_auth = "ops:{SECRET}-file"\n')
    env = clean_env(WSGISTACK_APP__ENV=f"SECRET_KEY={SECRET}-env")
    stack = start_stack(tmp_path, project, env=env, ready_path="/hello")
    stacks.append(stack)
    (project / "wsgistack.toml").write_text(f'[app]\ntarget = "hello:application"\n[ops]\nport = {ops_port}\n'
                                            f'basic_auth = "ops:{SECRET}-changed"\n')
    reload = wsgistack("reload", str(project), "--runtime-dir", str(stack.runtime_dir),
                       env={**env, "WSGISTACK_OPS__BASIC_AUTH": f"ops:{SECRET}-shell"})
    assert reload.returncode == 0, reload.stdout + reload.stderr
    assert "ops.basic_auth: ops:******** -> ops:********" in reload.stdout, reload.stdout
    assert "not applied: env WSGISTACK_OPS__BASIC_AUTH from this shell" in reload.stdout, reload.stdout
    assert SECRET not in reload.stdout + reload.stderr
    assert stack.stop() == 0
    assert SECRET not in stack.log()


@pytest.mark.skipif(not Path("/usr/sbin/haproxy").exists(), reason="haproxy not installed (make test installs it)")
def test_rollout_believes_nothing_the_app_user_wrote_on_a_node(tmp_path: Path) -> None:
    """`wsgistack rollout` (root, through a real balancer) reloads each node: the app's user of
    the first node plants an interpreter record naming its own program, the node's pidfile naming a
    root process outside the stack and its FIFO as a link to root's file. The rollout stops
    at that node with the refusal's id; nothing ran as root, no signal reached the canary,
    the file is untouched, and the node still serves."""
    from tests.integration.fleet import NODE_HOSTS, common_port, copy_app, node_runtime_base, node_states, start_balancer, start_node, wait_until

    app_user = worker_user()
    assert app_user is not None
    canary, canary_log = root_canary(tmp_path)
    procs = []
    try:
        victim = shared_dir(tmp_path, "victim") / "precious.txt"
        victim.write_text("root's own file\n")
        victim.chmod(0o644)
        pwned = shared_dir(tmp_path, "pwned") / "ran-as-root"
        app_dir = copy_app(tmp_path)
        port = common_port()
        node, other = (start_node(tmp_path, app_dir, NODE_HOSTS[i], port, i + 1, {}) for i in range(2))
        procs += [node, other]
        balancer = start_balancer(tmp_path, app_dir, [node, other])
        procs.append(balancer)
        wait_until(lambda: node_states(balancer) == {"node1": "UP", "node2": "UP"}, 60, "both nodes UP at the balancer", procs)
        private = node.runtime_dir / "private"
        assert private.stat().st_uid == pwd.getpwnam(app_user).pw_uid

        attack = as_user(app_user, f"""
            import json, os
            private = {str(private)!r}
            evil = os.path.join(private, "evil-python")
            open(evil, "w").write("#!/bin/sh\\ntouch {pwned}\\nexec /usr/bin/python3 \\"$@\\"\\n")
            os.chmod(evil, 0o755)
            for name, data in (("app-python.json", json.dumps({{"python": evil, "why": "planted"}})),
                               ("start.json", json.dumps({{"version": 2, "settings": {{}}, "python": evil}})),
                               ("uwsgi.pid", "{canary.pid}\\n")):
                path = os.path.join(private, name)
                if os.path.lexists(path):
                    os.unlink(path)
                open(path, "w").write(data)
            fifo = os.path.join(private, "uwsgi.fifo")
            os.unlink(fifo)
            os.symlink({str(victim)!r}, fifo)
        """)
        assert attack.returncode == 0, attack.stderr

        done = wsgistack("rollout", str(app_dir), "--runtime-dir", str(balancer.runtime_dir),
                         "--node-runtime-dir", str(node_runtime_base(tmp_path) / "{host}"), "--node", node.address,
                         "--node", other.address, "--ready-timeout", "20")
        print(done.stdout, done.stderr)
        assert done.returncode != 0, done.stdout + done.stderr
        assert "trust.E001" in done.stdout + done.stderr, done.stdout + done.stderr
        assert "evil-python" not in (node.runtime_dir / "uwsgi.ini").read_text()
        assert not pwned.exists(), "root ran the app user's program"
        assert victim.read_text() == "root's own file\n"
        assert http(f"http://{node.address}/", host="localhost").status == 200  # the node still serves
        assert "v1 node2" in http(f"http://{other.address}/", host="localhost").body.decode()  # not rolled past the refusal
        assert node.stop() == 0
        time.sleep(0.3)
        assert not canary_log.exists(), f"a signal reached a process outside the stack: {canary_log.read_text()}"
        assert canary.poll() is None
    finally:
        for proc in reversed(procs):
            proc.stop()
        canary.kill()
        canary.wait()
