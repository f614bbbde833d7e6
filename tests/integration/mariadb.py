"""A real MariaDB primary and replica (Debian's mariadb-server) on loopback ports: two
mariadbd with --no-defaults, their own data dirs, GTID replication, the replica read_only.
Users are created on the primary only (a local write on a strict-GTID replica stops its
replication); they reach the replica through replication."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import free_port

MARIADBD = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
CLIENT = shutil.which("mariadb") or "/usr/bin/mariadb"
DB, USER, PASSWORD = "demo", "demo", "demo-pw-1"


def available() -> bool:
    return Path(MARIADBD).exists() and Path(INSTALL_DB).exists() and Path(CLIENT).exists()


@dataclass
class Server:
    name: str
    server_id: int
    datadir: Path
    port: int
    read_only: bool = False
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.datadir.parent / f"{self.name}.err"

    @property
    def socket(self) -> Path:
        return self.datadir.parent / f"{self.name}.sock"

    def start(self) -> None:
        argv = [MARIADBD, "--no-defaults", f"--datadir={self.datadir}", f"--port={self.port}",
                "--bind-address=127.0.0.1", f"--socket={self.socket}", f"--pid-file={self.datadir.parent / self.name}.pid",
                f"--server-id={self.server_id}", "--log-bin=mariadb-bin", "--gtid-strict-mode=1",
                "--skip-name-resolve", "--user=root", f"--log-error={self.log}", "--innodb-buffer-pool-size=32M",
                "--max-connections=200", "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci"]
        if self.read_only:
            argv += ["--read-only=1", f"--relay-log={self.name}-relay"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            if self.socket.exists() and self.sql("SELECT 1", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise AssertionError(f"{self.name} did not start:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def sql(self, statements: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run SQL as root over the unix socket (root has no password here, and no TCP)."""
        done = subprocess.run([CLIENT, "--no-defaults", f"--socket={self.socket}", "-uroot", "-N", "-B", "-e", statements],
                              capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise AssertionError(f"{self.name}: {statements!r} failed: {done.stderr}")
        return done

    def value(self, query: str) -> str:
        return self.sql(query).stdout.strip()

    def status(self, name: str) -> int:
        """A global status counter (SHOW GLOBAL STATUS), e.g. Com_select."""
        out = self.value(f"SHOW GLOBAL STATUS LIKE '{name}'")
        return int(out.split()[1])


@dataclass
class Pair:
    primary: Server
    replica: Server

    def url(self, server: Server) -> str:
        return f"mysql://{USER}:{PASSWORD}@127.0.0.1:{server.port}/{DB}"

    def wait_caught_up(self, timeout: float = 30) -> None:
        pos = self.primary.value("SELECT @@GLOBAL.gtid_binlog_pos")
        got = self.replica.value(f"SELECT MASTER_GTID_WAIT('{pos}', {timeout})")
        assert got == "0", f"replica did not reach {pos}: {self.replica.value('SHOW SLAVE STATUS')}"

    def stop(self) -> None:
        self.replica.stop()
        self.primary.stop()


def start_pair(base: Path | None = None) -> Pair:
    base = base or Path(tempfile.mkdtemp(prefix="wst-mariadb-"))
    servers = []
    for name, server_id, read_only in (("primary", 1, False), ("replica", 2, True)):
        datadir = base / name
        done = subprocess.run([INSTALL_DB, "--no-defaults", f"--datadir={datadir}", "--user=root",
                               "--auth-root-authentication-method=socket", "--skip-test-db"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        servers.append(Server(name, server_id, datadir, free_port(), read_only))
    primary, replica = servers
    primary.start()
    replica.start()
    # Users on the primary only; the replica gets them (and everything else) by replication.
    primary.sql(
        "CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'repl-pw';"
        "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';"
        f"CREATE DATABASE {DB} CHARACTER SET utf8mb4;"
        f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';"
        f"GRANT ALL ON {DB}.* TO '{USER}'@'127.0.0.1';"
        f"GRANT ALL ON test_{DB}.* TO '{USER}'@'127.0.0.1';"
        # HAProxy's mysql-check logs in as this user, without a password.
        "CREATE USER 'haproxy'@'127.0.0.1';"
    )
    replica.sql(
        f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary.port}, MASTER_USER='repl', "
        "MASTER_PASSWORD='repl-pw', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START SLAVE;"
    )
    pair = Pair(primary, replica)
    pair.wait_caught_up()
    return pair
