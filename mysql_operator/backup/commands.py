"""Command lines of the client tools per flavor, and the defaults file that carries the password.

The password reaches a tool only through `--defaults-extra-file` (a 0600 file removed afterwards):
never on a command line (visible in /proc and `ps`), never in MYSQL_PWD, never in a log.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mysql_operator.conventions import MYSQL_PORT, Flavor
from mysql_operator.mysql.session import Login
from mysql_operator.tls.client import ClientTls

# Environment variables a child tool must not inherit: ours, and the legacy ones the tools read.
_SCRUBBED_ENV = (
    "DB_PASSWORD",
    "RECIPIENT_PASSWORD",
    "MYSQL_PWD",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)
SYSTEM_DATABASES = frozenset({"mysql", "information_schema", "performance_schema", "sys"})

# Where MySQL's own client tools are: the one setting for them. MariaDB's are its mariadb-* names on
# PATH. A bare `mysqldump` is no answer: on Debian (and in the image's MariaDB packages) it is a
# symlink to mariadb-dump, which refuses MySQL's flags (--source-data, --set-gtid-purged, --skip-gtids).
MYSQL_TOOLS_DIR_ENV = "MYSQL_TOOLS_DIR"
DEFAULT_MYSQL_TOOLS_DIR = "/opt/mysql/bin"


def mysql_tools_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The directory of MySQL's mysql, mysqldump and mysqlbinlog: $MYSQL_TOOLS_DIR, else the image's."""
    env = os.environ if environ is None else environ
    return Path(env.get(MYSQL_TOOLS_DIR_ENV) or DEFAULT_MYSQL_TOOLS_DIR)


@dataclass(frozen=True)
class Instance:
    """The server a backup is taken from or restored into."""

    host: str
    login: Login
    flavor: Flavor
    port: int = MYSQL_PORT
    name: str = field(default="")
    ssl_ca: str = ""  # a CA file: connect over TLS and verify the server's chain (the host is an IP)

    @property
    def label(self) -> str:
        return self.name or f"{self.host}:{self.port}"

    def tls(self) -> ClientTls | None:
        """TLS for pymysql sessions to this instance (the CA only: the host is a pod IP)."""
        return ClientTls(Path(self.ssl_ca).read_text()) if self.ssl_ca else None


@dataclass(frozen=True)
class Tools:
    """Names (or paths) of one flavor's client binaries: each flavor's dump is run by its own tools."""

    dump: str
    client: str
    binlog: str

    @classmethod
    def for_flavor(cls, flavor: Flavor, environ: Mapping[str, str] | None = None) -> Tools:
        """MariaDB's mariadb-* from PATH; MySQL's from `mysql_tools_dir()`."""
        if Flavor(flavor) == Flavor.MARIADB:
            return cls(dump="mariadb-dump", client="mariadb", binlog="mariadb-binlog")
        directory = mysql_tools_dir(environ)
        return cls(
            dump=str(directory / "mysqldump"),
            client=str(directory / "mysql"),
            binlog=str(directory / "mysqlbinlog"),
        )


def option_value(value: str) -> str:
    """A value quoted for an option file: backslashes and quotes escaped, inside double quotes."""
    if any(ch in value for ch in "\n\r\0"):
        raise ValueError("option values may not contain line breaks or NUL")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\'")
    return f'"{escaped}"'


def defaults_text(instance: Instance) -> str:
    """The [client] group of an option file for `instance`."""
    lines = [
        "[client]",
        f"user={option_value(instance.login.user)}",
        f"password={option_value(instance.login.password)}",
        f"host={option_value(instance.host)}",
        f"port={int(instance.port)}",
        "protocol=TCP",
    ]
    if instance.ssl_ca:
        # TLS, verifying the chain against the cluster's CA. Not the name: the host is a pod IP,
        # which no certificate of the cluster carries (tls/issue.py).
        lines.append(f"ssl-ca={option_value(instance.ssl_ca)}")
        lines += ["ssl-mode=VERIFY_CA"] if Flavor(instance.flavor) == Flavor.MYSQL else ["ssl"]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def defaults_file(instance: Instance, directory: str | None = None) -> Iterator[Path]:
    """An option file with the login, readable by us alone, removed on exit."""
    descriptor, name = tempfile.mkstemp(prefix="mysqlop-", suffix=".cnf", dir=directory)
    path = Path(name)
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(defaults_text(instance))
        yield path
    finally:
        path.unlink(missing_ok=True)


def child_env() -> dict[str, str]:
    """The environment for a client tool: ours without secrets, in UTC (binlog datetimes are local)."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env["TZ"] = "UTC"
    return env


def dump_command(tools: Tools, flavor: Flavor, defaults: Path, databases: Sequence[str]) -> list[str]:
    """A consistent logical dump of `databases` with the binlog position and GTIDs recorded.

    --single-transaction: one InnoDB snapshot, no table locks; --master-data/--source-data=2: the
    binlog file/position as a comment; MariaDB --gtid: gtid_slave_pos as a comment too; MySQL
    --set-gtid-purged=ON: GTID_PURGED set by the dump so a restored server knows its history.
    """
    command = [
        tools.dump,
        f"--defaults-extra-file={defaults}",  # must come first
        "--single-transaction",
        "--quick",
        "--routines",
        "--events",
        "--triggers",
        "--hex-blob",
        "--default-character-set=utf8mb4",
        "--max-allowed-packet=1G",
    ]
    if Flavor(flavor) == Flavor.MARIADB:
        command += ["--master-data=2", "--gtid"]
    else:
        command += ["--source-data=2", "--set-gtid-purged=ON"]
    if databases:
        command += ["--databases", *databases]
    else:
        # Nothing but system schemas: still record the position, with a dump that creates nothing.
        command += ["--no-create-info", "--no-data", "--no-create-db", "--databases", "mysql"]
    return command


def load_command(tools: Tools, defaults: Path) -> list[str]:
    """The client that loads a dump (or replayed binlog SQL) from stdin; stops at the first error."""
    return [
        tools.client,
        f"--defaults-extra-file={defaults}",
        "--batch",
        "--binary-mode",
        "--default-character-set=utf8mb4",
        "--max-allowed-packet=1G",
    ]


def binlog_fetch_command(tools: Tools, defaults: Path, binlog: str, directory: Path) -> list[str]:
    """Copy one closed binlog file as it is (`--raw`) into `directory`."""
    return [
        tools.binlog,
        f"--defaults-extra-file={defaults}",
        "--read-from-remote-server",
        "--raw",
        f"--result-file={directory}/",
        binlog,
    ]


def binlog_replay_command(
    tools: Tools, flavor: Flavor, files: Sequence[Path], start_position: int, stop_datetime: str | None
) -> list[str]:
    """SQL of archived binlog files from a position (in the first file) up to a time (UTC).

    MySQL's --skip-gtids lets the restored server give replayed transactions its own GTIDs; for
    MariaDB the restore drops the GTID lines from the output itself (mariadb-binlog has no such flag).
    """
    command = [tools.binlog, "--no-defaults", f"--start-position={int(start_position)}"]
    if stop_datetime:
        command.append(f"--stop-datetime={stop_datetime}")
    if Flavor(flavor) == Flavor.MYSQL:
        command.append("--skip-gtids")
    return [*command, *(str(f) for f in files)]
