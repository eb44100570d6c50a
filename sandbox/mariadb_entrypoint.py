"""The sandbox's stand-in for the official MariaDB image's entrypoint.

    python sandbox/mariadb_entrypoint.py --defaults-file F --datadir D --work-dir W -- [mariadbd args]

Runs as the container's process: on an empty data directory it initialises it from the environment
(MARIADB_ROOT_PASSWORD / MARIADB_ALLOW_EMPTY_ROOT_PASSWORD, MARIADB_ROOT_HOST, MARIADB_DATABASE,
MARIADB_USER, MARIADB_PASSWORD; the MYSQL_* spellings too), then execs `mariadbd`, keeping its pid.
Passwords only travel through the environment and a 0600 file that is removed at once; none is logged.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

IN_PROGRESS = ".sandbox-init-in-progress"


class InitError(RuntimeError):
    """The data directory could not be initialised."""


def env(name: str) -> str | None:
    """MARIADB_<name>, else MYSQL_<name>, as the official image reads them."""
    return os.environ.get(f"MARIADB_{name}") or os.environ.get(f"MYSQL_{name}")


def sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_identifier(value: str) -> str:
    return "`" + value.replace("`", "``") + "`"


def init_sql() -> str:
    """The statements the official entrypoint runs on first start (users, database), no binlog."""
    root_password = env("ROOT_PASSWORD")
    allow_empty = env("ALLOW_EMPTY_ROOT_PASSWORD") or env("ALLOW_EMPTY_PASSWORD")
    if root_password is None and not allow_empty:
        raise InitError("Database is uninitialized and password option is not specified. You need to "
                        "specify one of MARIADB_ROOT_PASSWORD or MARIADB_ALLOW_EMPTY_ROOT_PASSWORD")
    password = sql_string(root_password or "")
    root_host = env("ROOT_HOST") or "%"
    lines = [
        "SET @@SESSION.SQL_LOG_BIN=0;",
        "DROP USER IF EXISTS root@'127.0.0.1', root@'::1', ''@'localhost';",
        "EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@\\'', @@hostname, '\\'');",
        "EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS \\'\\'@\\'', @@hostname, '\\'');",
        f"SET PASSWORD FOR 'root'@'localhost' = PASSWORD({password});",
    ]
    if root_host != "localhost":
        host = sql_string(root_host)
        lines += [
            f"CREATE USER 'root'@{host} IDENTIFIED BY {password};",
            f"GRANT ALL ON *.* TO 'root'@{host} WITH GRANT OPTION;",
            f"GRANT PROXY ON ''@'%' TO 'root'@{host} WITH GRANT OPTION;",
        ]
    database = env("DATABASE")
    if database:
        lines.append(f"CREATE DATABASE IF NOT EXISTS {sql_identifier(database)};")
    user, user_password = env("USER"), env("PASSWORD")
    if user and user_password is not None:
        lines.append(f"CREATE USER {sql_string(user)}@'%' IDENTIFIED BY {sql_string(user_password)};")
        if database:
            lines.append(f"GRANT ALL ON {sql_identifier(database)}.* TO {sql_string(user)}@'%';")
    return "\n".join(lines) + "\n"


def initialise(defaults_file: Path, datadir: Path, work_dir: Path, server_args: list[str],
               initdb_dir: Path | None = None) -> None:
    """mariadb-install-db, then the official image's user set-up through a temporary server that
    listens on a private socket only (no network), with the binary log off for these statements."""
    marker = datadir / IN_PROGRESS
    if marker.exists():
        print("sandbox-entrypoint: a previous initialisation did not finish; starting it again", flush=True)
        for child in datadir.iterdir():
            if child.is_dir() and not child.is_symlink():
                subprocess.run(["rm", "-rf", str(child)], check=True, timeout=120)
            else:
                child.unlink()
    sql = init_sql() + initdb_sql(initdb_dir)
    datadir.mkdir(parents=True, exist_ok=True)
    marker.touch()
    print(f"sandbox-entrypoint: initialising database files in {datadir}", flush=True)
    result = subprocess.run(
        ["mariadb-install-db", f"--defaults-file={defaults_file}", f"--datadir={datadir}", "--user=root",
         "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve", *server_args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
    )
    if result.returncode != 0:
        print(result.stdout, flush=True)
        raise InitError(f"mariadb-install-db failed with exit code {result.returncode}")
    socket = work_dir / "init.sock"
    server = subprocess.Popen(
        ["mariadbd", f"--defaults-file={defaults_file}", *server_args, "--skip-networking",
         f"--socket={socket}", "--skip-slave-start"],
        stdin=subprocess.DEVNULL,
    )
    try:
        client = ["mariadb", "--no-defaults", f"--socket={socket}", "--user=root", "--protocol=socket"]
        deadline = time.monotonic() + 120
        while subprocess.run([*client, "-e", "SELECT 1"], capture_output=True, timeout=30).returncode != 0:
            if server.poll() is not None or time.monotonic() > deadline:
                raise InitError("the temporary server for initialisation did not start (see log-error)")
            time.sleep(0.3)
        setup = subprocess.run([*client, "--database=mysql"], input=sql, text=True, capture_output=True,
                               timeout=120)
        if setup.returncode != 0:
            message = setup.stderr.strip()
            for secret in (env("ROOT_PASSWORD"), env("PASSWORD")):
                if secret:
                    message = message.replace(secret, "***")
            raise InitError(f"setting up users failed: {message}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
    marker.unlink()
    print("sandbox-entrypoint: initialisation done", flush=True)


def initdb_sql(initdb_dir: Path | None) -> str:
    """The official image's /docker-entrypoint-initdb.d: each *.sql file, in name order, run as root
    after the users are set up (here: in the same session). Other kinds of file are refused."""
    if initdb_dir is None or not initdb_dir.is_dir():
        return ""
    parts = []
    for path in sorted(p for p in initdb_dir.iterdir() if p.is_file()):
        if path.suffix != ".sql":
            raise InitError(f"initdb file {path.name}: only *.sql files run in the sandbox")
        print(f"sandbox-entrypoint: running {path.name}", flush=True)
        parts.append(path.read_text().rstrip("\n") + "\n")
    return "".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mariadb_entrypoint.py")
    parser.add_argument("--defaults-file", type=Path, required=True)
    parser.add_argument("--datadir", type=Path, required=True)
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--initdb-dir", type=Path)
    parser.add_argument("server_args", nargs="*")
    options = parser.parse_args(argv)
    try:
        if not (options.datadir / "mysql").is_dir() or (options.datadir / IN_PROGRESS).exists():
            initialise(options.defaults_file, options.datadir, options.work_dir, options.server_args,
                       options.initdb_dir)
    except InitError as exc:
        print(f"sandbox-entrypoint: error: {exc}", flush=True)
        sys.exit(1)
    server = ["mariadbd", f"--defaults-file={options.defaults_file}", *options.server_args]
    os.execvp(server[0], server)


if __name__ == "__main__":
    main()
