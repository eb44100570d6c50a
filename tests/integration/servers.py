"""Real database servers for integration tests, each on its own loopback address, port 3306.

Each server plays what a pod does in a cluster: a data directory initialised once, my.cnf with a
server_id from its ordinal, read_only at start (a returning primary never takes writes before the
operator looked at it), and root@'%' with the password from the credentials (the image's job). Like
a kubelet with restartPolicy Always, a server whose mysqld exits by itself (not killed by the test)
is started again: MySQL's CLONE ends with the recipient shutting down to load the copied data.

Two flavors with one interface: `MariadbServer` (Debian's mariadbd) and `MysqlServer` (real MySQL
from the cached root, sandbox/mysql_root.py). `make_server(flavor, ...)` picks one; the few SQL
spellings a test needs that differ per flavor are methods here (GTIDs, replica status, semi-sync
variable names), so test modules stay flavor-neutral.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pymysql
import pymysql.cursors

from mysql_operator.conventions import Flavor, server_id_for_ordinal
from sandbox import mysql_root

ROOT_PASSWORD = "r00t-Secret-pw"
START_TIMEOUT = 90.0
FLAVORS = ("mariadb", "mysql")
_RESTARTS = 5  # the most self-exits a server is restarted after (a crash loop fails the test)


def _wait(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class DbServer:
    """One server; subclasses say how to initialise and run it."""

    ordinal: int
    host: str
    base: Path
    extra_config: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    _killed: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    flavor: ClassVar[Flavor]
    config_group: ClassVar[str]

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def socket(self) -> Path:
        return self.base / "mysqld.sock"

    @property
    def config(self) -> Path:
        return self.base / "my.cnf"

    @property
    def log(self) -> Path:
        return self.base / "error.log"

    @property
    def pod_name(self) -> str:
        return f"db-{self.ordinal}"

    @property
    def server_id(self) -> int:
        return server_id_for_ordinal(self.ordinal)

    def _settings(self) -> dict[str, str]:
        return {
            "user": "root",
            "datadir": str(self.datadir),
            "socket": str(self.socket),
            "pid-file": str(self.base / "mysqld.pid"),
            "log-error": str(self.log),
            "tmpdir": str(self.base / "tmp"),
            "bind-address": self.host,
            "port": "3306",
            "server_id": str(self.server_id),
            "log_bin": "mysql-bin",
            "read_only": "ON",
            "skip-name-resolve": "ON",
            "sync_binlog": "1",
            "innodb_flush_log_at_trx_commit": "1",
            "innodb_buffer_pool_size": "32M",
            "performance_schema": "OFF",
        }

    def _write_config(self) -> None:
        settings = {**self._settings(), **self.extra_config}
        lines = [f"[{self.config_group}]"] + [f"{k}={v}" if v else k for k, v in settings.items()]
        self.config.write_text("\n".join(lines) + "\n")

    def _initialise(self) -> None:
        raise NotImplementedError

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _after_first_start(self) -> None:
        """What the image does once on a fresh data directory, beyond initialising it."""

    def start(self) -> None:
        """Start the server (initialising the data directory the first time); waits until it answers."""
        (self.base / "tmp").mkdir(parents=True, exist_ok=True)
        self._write_config()
        fresh = not self.datadir.exists()
        if fresh:
            self._initialise()
        self._killed = False
        self._spawn()
        _wait(self._answers, START_TIMEOUT, f"{self.flavor.value} {self.host} to answer")
        if fresh:
            self._after_first_start()

    def _spawn(self) -> None:
        with self._lock:
            self.process = subprocess.Popen(
                self._command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
            )
            process = self.process
        threading.Thread(target=self._supervise, args=(process,), daemon=True).start()

    def _supervise(self, process: subprocess.Popen[bytes]) -> None:
        # The kubelet's part: a container whose process exits is started again.
        process.wait()
        with self._lock:
            if self._killed or self.process is not process or self.restarts >= _RESTARTS:
                return
            self.restarts += 1
        self._spawn()

    def _socket_connection(self) -> pymysql.connections.Connection:  # type: ignore[type-arg]
        return pymysql.connect(unix_socket=str(self.socket), user="root", password="", connect_timeout=2)

    def _answers(self) -> bool:
        process = self.process
        if process is not None and process.poll() is not None and self.restarts >= _RESTARTS:
            raise RuntimeError(f"{self.flavor.value} {self.host} exited: {self.log_tail()}")
        try:
            self._socket_connection().close()
            return True
        except pymysql.err.MySQLError:
            return False

    def log_tail(self, size: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-size:] if self.log.exists() else ""

    def kill(self) -> None:
        """kill -9, as a lost node would be; waits until the process is gone (no restart follows)."""
        with self._lock:
            self._killed = True
            process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)

    def wait_answering(self, timeout: float = START_TIMEOUT) -> None:
        """Wait (bounded) until the server answers again, e.g. after it restarted itself."""
        _wait(self._answers, timeout, f"{self.flavor.value} {self.host} to answer")

    def pause(self) -> None:
        """SIGSTOP the server: a frozen VM or an I/O stall (connections hang, nothing is refused)."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a paused server."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def root_connection(self) -> pymysql.connections.Connection:  # type: ignore[type-arg]
        return pymysql.connect(
            host=self.host,
            port=3306,
            user="root",
            password=ROOT_PASSWORD,
            connect_timeout=3,
            read_timeout=30,
            autocommit=True,
        )

    def sql(self, statement: str, args: tuple[object, ...] | None = None) -> list[tuple[Any, ...]]:
        with self.root_connection() as connection, connection.cursor() as cursor:
            cursor.execute(statement, args)
            return list(cursor.fetchall())

    # Per-flavor spellings a test needs ---------------------------------------------------------------
    def executed_gtids(self) -> str:
        """Every transaction this server has (MySQL gtid_executed, MariaDB gtid_binlog_pos)."""
        raise NotImplementedError

    def origin_mark(self) -> str:
        """A substring of a GTID set that marks transactions this server wrote itself."""
        raise NotImplementedError

    def replica_status(self) -> list[tuple[Any, ...]]:
        return self.sql("SHOW REPLICA STATUS")  # MariaDB 10.5+ knows the REPLICA spelling too

    def replica_status_row(self) -> dict[str, Any]:
        """SHOW REPLICA STATUS as a dict (empty when the server is no replica)."""
        with self.root_connection() as connection, connection.cursor(pymysql.cursors.DictCursor) as cursor:
            cursor.execute("SHOW REPLICA STATUS")
            row = cursor.fetchone()
        return dict(row) if row else {}

    def replicates_by_gtid(self) -> bool:
        """Whether replication positions itself by GTID (MySQL auto-position, MariaDB slave_pos)."""
        raise NotImplementedError

    def fenced(self) -> bool:
        """Whether even privileged users' writes are refused (MySQL super_read_only, MariaDB read_only)."""
        raise NotImplementedError

    def semi_sync_wait_point(self) -> str:
        raise NotImplementedError

    def semi_sync_source_enabled(self) -> bool:
        raise NotImplementedError

    def current_binlog(self) -> str:
        raise NotImplementedError

    def write_as_other_server(self, statement: str) -> None:
        """Run one logged write stamped as if another server had written it (a mixed GTID history)."""
        raise NotImplementedError


class MariadbServer(DbServer):
    """Debian's mariadbd; mariadb-install-db initialises a data directory in about a second."""

    flavor = Flavor.MARIADB
    config_group = "mariadbd"

    def _settings(self) -> dict[str, str]:
        return {
            **super()._settings(),
            "log_slave_updates": "ON",
            "binlog_format": "ROW",
            "innodb_log_file_size": "16M",
        }

    def _initialise(self) -> None:
        self.datadir.mkdir()
        done = subprocess.run(
            [
                "mariadb-install-db",
                f"--defaults-file={self.config}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            capture_output=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed: {done.stderr[-500:]!r} {self.log_tail(1500)}")

    def _command(self) -> list[str]:
        return ["mariadbd", f"--defaults-file={self.config}"]

    def _after_first_start(self) -> None:
        with self._socket_connection() as connection, connection.cursor() as cursor:
            cursor.execute("SET SESSION sql_log_bin=0")
            # install-db also makes root@127.0.0.1 etc. with no password; they would shadow root@%.
            cursor.execute("SELECT User, Host FROM mysql.user WHERE Host NOT IN ('localhost', '%')")
            for user, host in cursor.fetchall():
                cursor.execute("DROP USER %s@%s", (user, host))
            cursor.execute("CREATE USER IF NOT EXISTS 'root'@'%%' IDENTIFIED BY %s", (ROOT_PASSWORD,))
            cursor.execute("GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION")

    def executed_gtids(self) -> str:
        return str(self.sql("SELECT @@gtid_binlog_pos")[0][0])

    def origin_mark(self) -> str:
        return f"-{self.server_id}-"

    def semi_sync_source_enabled(self) -> bool:
        return int(self.sql("SELECT @@rpl_semi_sync_master_enabled")[0][0]) == 1

    def semi_sync_wait_point(self) -> str:
        return str(self.sql("SELECT @@rpl_semi_sync_master_wait_point")[0][0])

    def replicates_by_gtid(self) -> bool:
        return str(self.replica_status_row().get("Using_Gtid")) == "Slave_Pos"

    def fenced(self) -> bool:
        return int(self.sql("SELECT @@read_only")[0][0]) == 1

    def current_binlog(self) -> str:
        return str(self.sql("SHOW BINLOG STATUS")[0][0])

    def write_as_other_server(self, statement: str) -> None:
        with self.root_connection() as connection, connection.cursor() as cursor:
            cursor.execute("SET SESSION server_id = 99")
            cursor.execute(statement)


class MysqlTemplate:
    """One initialised MySQL data directory per test session, copied for each server.

    `mysqld --initialize-insecure` takes about 10 s; a copy takes a fraction of that. The copy loses
    auto.cnf so that each server makes its own server_uuid at first start.
    """

    _lock = threading.Lock()
    _path: Path | None = None
    init_seconds: float | None = None

    @classmethod
    def path(cls) -> Path:
        with cls._lock:
            if cls._path is None:
                cls._path = cls._build()
                atexit.register(cls.discard)  # also when the session is interrupted before teardown
            return cls._path

    @classmethod
    def _build(cls) -> Path:
        base = Path(tempfile.mkdtemp(prefix="mysqlop-template-"))
        datadir = base / "data"
        init = base / "init.sql"
        # What the official image's entrypoint does from MYSQL_ROOT_PASSWORD: root@'%' with it.
        init.write_text(
            f"CREATE USER 'root'@'%' IDENTIFIED BY '{ROOT_PASSWORD}';\n"
            "GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;\n"
        )
        started = time.monotonic()
        done = subprocess.run(
            [
                *mysql_root.mysqld_argv(),
                "--user=root",
                f"--datadir={datadir}",
                f"--log-error={base / 'init.log'}",
                "--innodb-redo-log-capacity=8M",
                "--innodb-buffer-pool-size=32M",
                f"--init-file={init}",
                "--initialize-insecure",
            ],
            capture_output=True,
            timeout=300,
        )
        if done.returncode != 0:
            log_file = base / "init.log"
            log = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
            shutil.rmtree(base, ignore_errors=True)
            raise RuntimeError(f"mysqld --initialize-insecure failed: {done.stderr[-500:]!r} {log}")
        cls.init_seconds = time.monotonic() - started
        (datadir / "auto.cnf").unlink(missing_ok=True)
        return datadir

    @classmethod
    def discard(cls) -> None:
        with cls._lock:
            if cls._path is not None:
                shutil.rmtree(cls._path.parent, ignore_errors=True)
                cls._path = None


class MysqlServer(DbServer):
    """Real MySQL (the pinned LTS series) through the cached root's loader; data from the template."""

    flavor = Flavor.MYSQL
    config_group = "mysqld"

    def _settings(self) -> dict[str, str]:
        return {
            **super()._settings(),
            "gtid_mode": "ON",
            "enforce_gtid_consistency": "ON",
            "log_replica_updates": "ON",
            "relay_log": "relay-bin",
            "innodb_redo_log_capacity": "8M",
            "mysqlx": "OFF",
            # As the operator's my.cnf (resources/config.py) loads them: a fenced instance can't INSTALL.
            "plugin_load_add": "mysql_clone.so;semisync_source.so;semisync_replica.so",
            "secure_file_priv": str(self.base / "tmp"),  # its default directory exists only in the root
        }

    def _initialise(self) -> None:
        shutil.copytree(MysqlTemplate.path(), self.datadir, symlinks=True)

    def _command(self) -> list[str]:
        return mysql_root.mysqld_argv(self.config)

    def executed_gtids(self) -> str:
        return str(self.sql("SELECT @@gtid_executed")[0][0]).replace("\n", "")

    def origin_mark(self) -> str:
        return str(self.sql("SELECT @@server_uuid")[0][0])

    def semi_sync_source_enabled(self) -> bool:
        return int(self.sql("SELECT @@rpl_semi_sync_source_enabled")[0][0]) == 1

    def semi_sync_wait_point(self) -> str:
        return str(self.sql("SELECT @@rpl_semi_sync_source_wait_point")[0][0])

    def replicates_by_gtid(self) -> bool:
        return str(self.replica_status_row().get("Auto_Position")) == "1"

    def fenced(self) -> bool:
        return self.sql("SELECT @@read_only, @@super_read_only")[0] == (1, 1)

    def current_binlog(self) -> str:
        return str(self.sql("SHOW BINARY LOG STATUS")[0][0])

    def write_as_other_server(self, statement: str) -> None:
        with self.root_connection() as connection, connection.cursor() as cursor:
            cursor.execute("SET SESSION gtid_next = '99999999-9999-9999-9999-999999999999:1'")
            cursor.execute(statement)
            cursor.execute("SET SESSION gtid_next = 'AUTOMATIC'")


SERVER_CLASSES: dict[Flavor, type[DbServer]] = {Flavor.MARIADB: MariadbServer, Flavor.MYSQL: MysqlServer}


def make_server(
    flavor: str | Flavor, ordinal: int, host: str, base: Path, extra_config: dict[str, str] | None = None
) -> DbServer:
    """A server of `flavor` (not started)."""
    return SERVER_CLASSES[Flavor(flavor)](ordinal, host, base, dict(extra_config or {}))
