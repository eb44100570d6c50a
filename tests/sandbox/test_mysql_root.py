"""The cached MySQL root runs its tools by name through wrapper scripts (real binaries, no cluster)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from sandbox import mysql_root


def test_wrappers_run_the_pinned_mysql_tools(tmp_path: Path) -> None:
    lines = mysql_root.REPO_ROOT.joinpath("hack", "versions.env").read_text().splitlines()
    pinned = next(line.split("=", 1)[1].strip() for line in lines if line.startswith("MYSQL_SERIES="))
    wrappers = mysql_root.write_wrappers(tmp_path / "bin")
    assert sorted(wrappers) == sorted(mysql_root.TOOLS)
    for tool, path in wrappers.items():
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=60, check=True)
        words = out.stdout.split()
        # the root's binaries, not the host's (MariaDB's mysqld/mysqldump symlinks say 10.11)
        assert words[0].endswith(tool), out.stdout
        assert words[words.index("Ver") + 1].startswith(f"{pinned}."), out.stdout
    assert mysql_root.version().startswith(f"{pinned}.")


def test_mysqld_wrapper_keeps_a_defaults_file_first_and_reads_no_host_config(tmp_path: Path) -> None:
    wrappers = mysql_root.write_wrappers(tmp_path / "bin")
    config = tmp_path / "my.cnf"
    config.write_text("[mysqld]\nmax_connections=123\n")
    with_file = subprocess.run(
        [str(wrappers["mysqld"]), f"--defaults-file={config}", "--verbose", "--help"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert "\nmax-connections                                              123\n" in with_file.stdout
    plain = subprocess.run(
        [str(wrappers["mysqld"]), "--verbose", "--help"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    # Without a file named, nothing of the host's /etc/mysql (MariaDB's: bind-address 127.0.0.1,
    # provider plugins this mysqld refuses) reaches mysqld.
    rows = [line.split() for line in plain.stdout.splitlines()]
    settings = {parts[0]: parts[1] for parts in rows if len(parts) == 2}
    assert settings["bind-address"] == "*"
    assert settings["basedir"].startswith(str(mysql_root.root()))
