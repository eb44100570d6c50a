"""Which MySQL images the sandbox's node agent runs as its real mysqld 9.7.4, and the official
entrypoint's first-start SQL it plays (pure parts; the e2e tier runs them for real)."""

from __future__ import annotations

import pytest

from sandbox import mysql_entrypoint
from sandbox.images import MySQLRunner, OperatorRunner, mysql_tag_problem, runner_for

INSTALLED = "9.7.4-2"


@pytest.mark.parametrize(
    "image",
    ["mysql:9.7", "mysql:9.7.4", "docker.io/library/mysql:9.7.4", "mysql:9.7-oracle", "library/mysql:9.7"],
)
def test_tags_naming_the_installed_version_run(image: str) -> None:
    assert mysql_tag_problem(image, INSTALLED) is None


@pytest.mark.parametrize(
    ("image", "why"),
    [
        ("mysql:8.4", "MySQL 8.4 binaries are not available"),
        ("mysql:9.7.3", "MySQL 9.7.3 binaries are not available"),
        ("mysql:9.6", "MySQL 9.6 binaries are not available"),
        ("mysql:9", "names no exact version"),
        ("mysql", "names no exact version"),
        ("mysql:latest", "names no exact version"),
        ("mysql:lts", "names no exact version"),
        ("mysql@sha256:" + "0" * 64, "digest"),
        ("percona/mysql:9.7", "not an official MySQL server image"),
    ],
)
def test_any_other_version_is_refused_never_faked(image: str, why: str) -> None:
    problem = mysql_tag_problem(image, INSTALLED)
    assert problem is not None and why in problem
    assert "mysql:9.7 or mysql:9.7.4" in problem or "not an official" in problem


def test_runners_are_chosen_by_image() -> None:
    assert isinstance(runner_for("mysql:9.7"), MySQLRunner)
    assert isinstance(runner_for("mysql:8.4"), MySQLRunner)  # it refuses, with the reason
    assert isinstance(runner_for("registry.example/mysql-operator:0.1"), OperatorRunner)
    assert not isinstance(runner_for("mariadb:10.11"), MySQLRunner)


def test_first_start_sql_sets_root_unlogged_and_quotes_values() -> None:
    environ = {"MYSQL_ROOT_PASSWORD": "p'w\\x", "MYSQL_DATABASE": "shop`x"}
    sql = mysql_entrypoint.init_sql({**environ, "MYSQL_USER": "app", "MYSQL_PASSWORD": "s"})
    lines = sql.splitlines()
    assert lines[0] == "SET @@SESSION.SQL_LOG_BIN=0;", "nothing of the set-up may reach the binlog"
    assert "ALTER USER 'root'@'localhost' IDENTIFIED BY 'p\\'w\\\\x';" in lines
    assert "CREATE USER 'root'@'%' IDENTIFIED BY 'p\\'w\\\\x';" in lines
    assert "CREATE DATABASE IF NOT EXISTS `shop``x`;" in lines
    assert "GRANT ALL ON `shop``x`.* TO 'app'@'%';" in lines


def test_first_start_without_a_password_option_is_refused() -> None:
    with pytest.raises(mysql_entrypoint.InitError, match="MYSQL_ROOT_PASSWORD"):
        mysql_entrypoint.init_sql({})
    assert "IDENTIFIED BY ''" in mysql_entrypoint.init_sql({"MYSQL_ALLOW_EMPTY_PASSWORD": "yes"})


def test_root_host_localhost_creates_no_remote_root() -> None:
    sql = mysql_entrypoint.init_sql({"MYSQL_ROOT_PASSWORD": "x", "MYSQL_ROOT_HOST": "localhost"})
    assert "'root'@'%'" not in sql
