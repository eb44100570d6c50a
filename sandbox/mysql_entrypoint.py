"""The sandbox's stand-in for the official MySQL image's entrypoint (docker-entrypoint.sh).

    python sandbox/mysql_entrypoint.py --defaults-file F --datadir D --work-dir W --bin-dir B \
        [--initdb-dir I] -- [mysqld args]

Runs as the container's process. On an empty data directory it does what the official image does on
first start: `mysqld --initialize-insecure`, then, through a temporary server listening on a private
socket only, sets root's password from MYSQL_ROOT_PASSWORD (or allows it empty with
MYSQL_ALLOW_EMPTY_PASSWORD), creates root@MYSQL_ROOT_HOST (default '%'), MYSQL_DATABASE and
MYSQL_USER/MYSQL_PASSWORD with the binary log off for these statements, and runs the files of
/docker-entrypoint-initdb.d (*.sql, *.sql.gz, *.sh) when the pod mounts it. Then it execs `mysqld`,
keeping its pid. A data directory that already holds a database is never initialised again.
Not done (the operator relies on none of it): loading time zone tables (as MYSQL_INITDB_SKIP_TZINFO),
MYSQL_RANDOM_ROOT_PASSWORD and MYSQL_ONETIME_PASSWORD.

B holds wrapper scripts (sandbox/mysql_root.py) that run the real `mysqld` and `mysql` through the
MySQL root's loader. Passwords only travel through the environment and a 0600 option file that is
removed at once; none is logged. Stdlib only: the node agent runs it by path.
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import time
from pathlib import Path

IN_PROGRESS = ".sandbox-init-in-progress"  # mysqld --initialize ignores dot files in the datadir


class InitError(RuntimeError):
    """The data directory could not be initialised."""


def sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_identifier(value: str) -> str:
    return "`" + value.replace("`", "``") + "`"


def init_sql(environ: dict[str, str]) -> str:
    """The official entrypoint's first-start statements (root password and host, database, user)."""
    root_password = environ.get("MYSQL_ROOT_PASSWORD")
    if not root_password and not environ.get("MYSQL_ALLOW_EMPTY_PASSWORD"):
        raise InitError("Database is uninitialized and password option is not specified. You need to specify "
                        "one of MYSQL_ROOT_PASSWORD or MYSQL_ALLOW_EMPTY_PASSWORD")
    password = sql_string(root_password or "")
    root_host = environ.get("MYSQL_ROOT_HOST") or "%"
    lines = ["SET @@SESSION.SQL_LOG_BIN=0;", f"ALTER USER 'root'@'localhost' IDENTIFIED BY {password};"]
    if root_host != "localhost":
        host = sql_string(root_host)
        lines += [
            f"CREATE USER 'root'@{host} IDENTIFIED BY {password};",
            f"GRANT ALL ON *.* TO 'root'@{host} WITH GRANT OPTION;",
            f"GRANT PROXY ON ''@'' TO 'root'@{host} WITH GRANT OPTION;",
        ]
    database = environ.get("MYSQL_DATABASE")
    if database:
        lines.append(f"CREATE DATABASE IF NOT EXISTS {sql_identifier(database)};")
    user, user_password = environ.get("MYSQL_USER"), environ.get("MYSQL_PASSWORD")
    if user and user_password:
        if user == "root":
            raise InitError("MYSQL_USER=root: root is created from MYSQL_ROOT_PASSWORD, not MYSQL_USER")
        lines.append(f"CREATE USER {sql_string(user)}@'%' IDENTIFIED BY {sql_string(user_password)};")
        if database:
            lines.append(f"GRANT ALL ON {sql_identifier(database)}.* TO {sql_string(user)}@'%';")
    lines.append("FLUSH PRIVILEGES;")
    return "\n".join(lines) + "\n"


def masked(text: str, environ: dict[str, str]) -> str:
    for key in ("MYSQL_ROOT_PASSWORD", "MYSQL_PASSWORD"):
        secret = environ.get(key)
        if secret:
            text = text.replace(secret, "***")
    return text


def clear(datadir: Path) -> None:
    """Remove what an unfinished initialisation left (mysqld --initialize wants an empty datadir); a
    data directory holding anything else is left for mysqld to refuse, as the official image does."""
    for child in datadir.iterdir():
        if child.is_dir() and not child.is_symlink():
            subprocess.run(["rm", "-rf", str(child)], check=True, timeout=120)
        else:
            child.unlink()


class TemporaryServer:
    """mysqld on a private socket, no networking, replication not started: for first-start set-up."""

    def __init__(self, bin_dir: Path, defaults_file: Path, work_dir: Path, server_args: list[str]) -> None:
        self.socket = work_dir / "init.sock"
        self.bin_dir = bin_dir
        self.process = subprocess.Popen(
            [str(bin_dir / "mysqld"), f"--defaults-file={defaults_file}", *server_args, "--skip-networking",
             f"--socket={self.socket}", "--skip-replica-start", "--mysqlx=OFF"],
            stdin=subprocess.DEVNULL,
        )
        self.options: Path | None = None

    def client(self, password: str | None) -> list[str]:
        """The mysql client on the private socket; a password goes through a 0600 option file."""
        if self.options is None:
            self.options = self.socket.with_name("init-client.cnf")
            self.options.touch(mode=0o600)
        lines = ["[client]", "user=root", f"socket={self.socket}", "protocol=socket"]
        if password:
            lines.append(f"password={password}")
        self.options.write_text("\n".join(lines) + "\n")
        return [str(self.bin_dir / "mysql"), f"--defaults-file={self.options}"]

    def wait_up(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        probe = [*self.client(None), "-e", "SELECT 1"]
        while subprocess.run(probe, capture_output=True, timeout=30).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise InitError("the temporary server for initialisation did not start (see log-error)")
            time.sleep(0.3)

    def stop(self) -> None:
        if self.options is not None:
            self.options.unlink(missing_ok=True)
        self.process.terminate()
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def run_sql(client: list[str], sql: str, environ: dict[str, str], what: str, database: str = "mysql") -> None:
    done = subprocess.run([*client, f"--database={database}"], input=sql, text=True, capture_output=True,
                          timeout=600)
    if done.returncode != 0:
        raise InitError(f"{what} failed: {masked(done.stderr.strip(), environ)}")


def run_initdb(initdb_dir: Path, server: TemporaryServer, environ: dict[str, str]) -> None:
    """As the official image: every file in name order; *.sh run by sh (the temporary server's socket
    in MYSQL_UNIX_PORT, so a plain `mysql` reaches it), *.sql(.gz) fed to mysql as root."""
    client = server.client(environ.get("MYSQL_ROOT_PASSWORD"))
    database = environ.get("MYSQL_DATABASE") or "mysql"
    for path in sorted(p for p in initdb_dir.iterdir() if p.is_file()):
        if path.name.endswith(".sh"):
            print(f"sandbox-entrypoint: running {path.name}", flush=True)
            script_env = {**environ, "MYSQL_UNIX_PORT": str(server.socket)}
            done = subprocess.run(["sh", str(path)], env=script_env, timeout=600)
            if done.returncode != 0:
                raise InitError(f"{path.name} exited with {done.returncode}")
        elif path.name.endswith(".sql"):
            print(f"sandbox-entrypoint: running {path.name}", flush=True)
            run_sql(client, path.read_text(), environ, path.name, database)
        elif path.name.endswith(".sql.gz"):
            print(f"sandbox-entrypoint: running {path.name}", flush=True)
            run_sql(client, gzip.decompress(path.read_bytes()).decode(), environ, path.name, database)
        else:
            print(f"sandbox-entrypoint: ignoring {path.name}", flush=True)


def initialise(options: argparse.Namespace, environ: dict[str, str]) -> None:
    datadir: Path = options.datadir
    sql = init_sql(environ)  # refuse before touching anything when the environment is incomplete
    datadir.mkdir(parents=True, exist_ok=True)
    marker = datadir / IN_PROGRESS
    if marker.exists():
        print("sandbox-entrypoint: a previous initialisation did not finish; starting it again", flush=True)
        clear(datadir)
    marker.touch()
    print(f"sandbox-entrypoint: initialising database files in {datadir}", flush=True)
    result = subprocess.run(
        [str(options.bin_dir / "mysqld"), f"--defaults-file={options.defaults_file}", *options.server_args,
         "--initialize-insecure"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600,
    )
    if result.returncode != 0:
        print(result.stdout, flush=True)
        raise InitError(f"mysqld --initialize-insecure failed (exit code {result.returncode}; see log-error)")
    server = TemporaryServer(options.bin_dir, options.defaults_file, options.work_dir, options.server_args)
    try:
        server.wait_up()
        run_sql(server.client(None), sql, environ, "setting up users")
        if options.initdb_dir is not None and options.initdb_dir.is_dir():
            run_initdb(options.initdb_dir, server, environ)
    finally:
        server.stop()
    marker.unlink()
    print("sandbox-entrypoint: initialisation done", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mysql_entrypoint.py")
    parser.add_argument("--defaults-file", type=Path, required=True)
    parser.add_argument("--datadir", type=Path, required=True)
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--bin-dir", type=Path, required=True)
    parser.add_argument("--initdb-dir", type=Path)
    parser.add_argument("server_args", nargs="*")
    options = parser.parse_args(argv)
    environ = dict(os.environ)
    try:
        if not (options.datadir / "mysql").is_dir() or (options.datadir / IN_PROGRESS).exists():
            initialise(options, environ)
    except InitError as exc:
        print(f"sandbox-entrypoint: error: {exc}", flush=True)
        sys.exit(1)
    server = [str(options.bin_dir / "mysqld"), f"--defaults-file={options.defaults_file}",
              *options.server_args]
    os.execv(server[0], server)


if __name__ == "__main__":
    main()
