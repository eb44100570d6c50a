"""Real MySQL from the cached root file system built by hack/build-mysql.sh.

Debian's sid packages need a newer glibc than the host's, so every MySQL binary runs through the
root's own dynamic loader with the root's library path (no chroot): host paths for data directories,
sockets and option files keep working. This module is the one place that knows that command line;
the integration tier, the sandbox's node agent and the operator-image runner all use it, either as
argv lists or as wrapper scripts written into a directory (so tools can be called by name, e.g. via
MYSQL_TOOLS_DIR).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-mysql.sh"

# Client tools live in usr/bin, the server in usr/sbin.
CLIENT_TOOLS = ("mysql", "mysqldump", "mysqlbinlog", "mysqladmin")
SERVER = "mysqld"
TOOLS = (SERVER, *CLIENT_TOOLS)
# Options that mysqld and the clients accept only as their very first argument.
_FIRST_ONLY = ("--no-defaults", "--defaults-file=", "--defaults-extra-file=")


class MysqlRootMissing(RuntimeError):
    """The MySQL root is not built (or not finished); run hack/build-mysql.sh (make mysql)."""


def root() -> Path:
    """The root's path, as the build script computes it (TOOLS_CACHE and the pinned series)."""
    done = subprocess.run(
        [str(BUILD_SCRIPT), "--root"], capture_output=True, text=True, check=True, timeout=30
    )
    return Path(done.stdout.strip())


def is_built(mysql_root: Path | None = None) -> bool:
    """True once the build finished (it writes `.ready` last)."""
    return ((mysql_root or root()) / ".ready").is_file()


def ensure_built(timeout: float = 1800) -> Path:
    """Build the root if missing (a warm cache returns at once; a cold one takes about a minute)."""
    subprocess.run([str(BUILD_SCRIPT)], check=True, timeout=timeout)
    return root()


def _checked(mysql_root: Path | None) -> Path:
    found = mysql_root or root()
    if not is_built(found):
        raise MysqlRootMissing(f"no MySQL root at {found}; build it with {BUILD_SCRIPT} (make mysql)")
    return found


def binary_path(tool: str, mysql_root: Path | None = None) -> Path:
    """The tool's binary inside the root."""
    if tool not in TOOLS:
        raise ValueError(f"unknown MySQL tool {tool!r}; known: {', '.join(TOOLS)}")
    base = _checked(mysql_root)
    return base / "usr" / ("sbin" if tool == SERVER else "bin") / tool


def loader_argv(tool: str, mysql_root: Path | None = None) -> list[str]:
    """The command prefix that runs `tool` through the root's loader; append the tool's arguments.

    For mysqld prefer `mysqld_argv`, which adds the root's base, message and plugin directories.
    """
    base = _checked(mysql_root)
    libraries = f"{base}/usr/lib/x86_64-linux-gnu:{base}/lib/x86_64-linux-gnu"
    binary = str(binary_path(tool, base))
    # argv0 is the full path: given a bare name, mysqld searches PATH for itself and would find the
    # host's /usr/sbin/mysqld (MariaDB's symlink here).
    return [
        str(base / "lib64" / "ld-linux-x86-64.so.2"),
        "--library-path",
        libraries,
        "--argv0",
        binary,
        binary,
    ]


def server_paths(mysql_root: Path | None = None) -> list[str]:
    """mysqld options pointing at the root's own files (its compiled-in paths are the image's)."""
    base = _checked(mysql_root)
    return [
        f"--basedir={base}/usr",
        f"--lc-messages-dir={base}/usr/share/mysql",
        f"--character-sets-dir={base}/usr/share/mysql/charsets",
        f"--plugin-dir={base}/usr/lib/mysql/plugin",
    ]


def mysqld_argv(defaults_file: Path | None = None, mysql_root: Path | None = None) -> list[str]:
    """argv that starts mysqld with `defaults_file` (or no option files at all); append more options.

    Without a defaults file the host's /etc/mysql (MariaDB's, here) must not be read: --no-defaults.
    """
    first = f"--defaults-file={defaults_file}" if defaults_file else "--no-defaults"
    return [*loader_argv(SERVER, mysql_root), first, *server_paths(mysql_root)]


def client_argv(tool: str, mysql_root: Path | None = None) -> list[str]:
    """argv prefix for a client tool (mysql, mysqldump, mysqlbinlog, mysqladmin)."""
    if tool not in CLIENT_TOOLS:
        raise ValueError(f"{tool!r} is not a MySQL client tool; known: {', '.join(CLIENT_TOOLS)}")
    return loader_argv(tool, mysql_root)


def wrapper_text(tool: str, mysql_root: Path | None = None) -> str:
    """A POSIX shell script running `tool` with the caller's arguments through the root's loader.

    An option that must come first (--defaults-file=..., --no-defaults, ...) stays first; mysqld
    also gets the root's paths, and --no-defaults when the caller named no option file.
    """
    prefix = " ".join(shlex.quote(part) for part in loader_argv(tool, mysql_root))
    lines = ["#!/bin/sh", f"# {tool} from the MySQL root {_checked(mysql_root)} (sandbox/mysql_root.py)"]
    patterns = "|".join(f"{option}*" if option.endswith("=") else option for option in _FIRST_ONLY)
    if tool == SERVER:
        paths = " ".join(shlex.quote(part) for part in server_paths(mysql_root))
        lines += [
            'case "$1" in',
            f'  {patterns}) first="$1"; shift ;;',
            '  *) first="--no-defaults" ;;',
            "esac",
            f'exec {prefix} "$first" {paths} "$@"',
        ]
    else:
        lines.append(f'exec {prefix} "$@"')
    return "\n".join(lines) + "\n"


def write_wrappers(directory: Path, mysql_root: Path | None = None) -> dict[str, Path]:
    """Write an executable wrapper per tool into `directory` (created); returns tool -> path."""
    base = _checked(mysql_root)
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for tool in TOOLS:
        path = directory / tool
        temporary = path.with_name(f".{tool}.tmp")
        temporary.write_text(wrapper_text(tool, base))
        temporary.chmod(0o755)
        os.replace(temporary, path)  # atomic: a concurrent caller never sees half a script
        written[tool] = path
    return written


def version(mysql_root: Path | None = None) -> str:
    """The server's version string, e.g. '9.7.4-2', from `mysqld --version`."""
    done = subprocess.run(
        [*loader_argv(SERVER, mysql_root), "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    words = done.stdout.split()
    return words[words.index("Ver") + 1] if "Ver" in words else done.stdout.strip()
