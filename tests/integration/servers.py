"""Real MariaDB servers for integration tests, each on its own loopback address, port 3306.

Each server plays what a pod does in a cluster: a data directory initialised once, my.cnf with a
server_id from its ordinal, read_only at start (a returning primary never takes writes before the
operator looked at it), and root@'%' with the password from the credentials (the image's job).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pymysql

from mysql_operator.conventions import server_id_for_ordinal

ROOT_PASSWORD = "r00t-Secret-pw"
START_TIMEOUT = 60.0


def _wait(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class MariadbServer:
    ordinal: int
    host: str
    base: Path
    extra_config: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

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

    def _write_config(self) -> None:
        settings = {
            "user": "root",
            "datadir": str(self.datadir),
            "socket": str(self.socket),
            "pid-file": str(self.base / "mysqld.pid"),
            "log-error": str(self.log),
            "tmpdir": str(self.base / "tmp"),
            "bind-address": self.host,
            "port": "3306",
            "server_id": str(server_id_for_ordinal(self.ordinal)),
            "log_bin": "mysql-bin",
            "log_slave_updates": "ON",
            "binlog_format": "ROW",
            "read_only": "ON",
            "skip-name-resolve": "ON",
            "sync_binlog": "1",
            "innodb_flush_log_at_trx_commit": "1",
            "innodb_buffer_pool_size": "32M",
            "innodb_log_file_size": "16M",
            "performance_schema": "OFF",
            **self.extra_config,
        }
        lines = ["[mariadbd]"] + [f"{k}={v}" if v else k for k, v in settings.items()]
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        """Start mariadbd (initialising the data directory the first time); waits until it answers."""
        (self.base / "tmp").mkdir(parents=True, exist_ok=True)
        self._write_config()
        fresh = not self.datadir.exists()
        if fresh:
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
                tail = self.log.read_text()[-1500:] if self.log.exists() else ""
                raise RuntimeError(f"mariadb-install-db failed: {done.stderr[-500:]!r} {tail}")
        self.process = subprocess.Popen(
            ["mariadbd", f"--defaults-file={self.config}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait(self._answers, START_TIMEOUT, f"mariadbd {self.host} to answer")
        if fresh:
            with self._socket_connection() as connection, connection.cursor() as cursor:
                cursor.execute("SET SESSION sql_log_bin=0")
                # install-db also makes root@127.0.0.1 etc. with no password; they would shadow root@%.
                cursor.execute("SELECT User, Host FROM mysql.user WHERE Host NOT IN ('localhost', '%')")
                for user, host in cursor.fetchall():
                    cursor.execute("DROP USER %s@%s", (user, host))
                cursor.execute("CREATE USER IF NOT EXISTS 'root'@'%%' IDENTIFIED BY %s", (ROOT_PASSWORD,))
                cursor.execute("GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION")

    def _socket_connection(self) -> pymysql.connections.Connection:  # type: ignore[type-arg]
        return pymysql.connect(unix_socket=str(self.socket), user="root", password="", connect_timeout=2)

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"mariadbd {self.host} exited: {tail}")
        try:
            self._socket_connection().close()
            return True
        except pymysql.err.MySQLError:
            return False

    def kill(self) -> None:
        """kill -9, as a lost node would be; waits until the process is gone."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None

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

    def sql(self, statement: str, args: tuple[object, ...] | None = None) -> list[tuple[object, ...]]:
        with self.root_connection() as connection, connection.cursor() as cursor:
            cursor.execute(statement, args)
            return list(cursor.fetchall())
