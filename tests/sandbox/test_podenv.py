"""How the agent resolves what a container sees (pure functions, no cluster)."""

from sandbox.images import MySQLRunner, OperatorRunner, rewrite_paths, runner_for
from sandbox.podenv import expand, parse_quantity


def test_expand_substitutes_known_variables_like_kubelet() -> None:
    env = {"POD_INDEX": "2", "POD_IP": "127.1.2.3"}
    assert expand("--server-id=1$(POD_INDEX)", env) == "--server-id=12"
    assert expand("--report-host=$(POD_IP)", env) == "--report-host=127.1.2.3"


def test_expand_leaves_unknown_variables_and_unescapes_double_dollar() -> None:
    assert expand("$(NOPE)-$$(POD_IP)-$(", {"POD_IP": "x"}) == "$(NOPE)-$(POD_IP)-$("


def test_images_choose_runners_operator_first() -> None:
    assert isinstance(runner_for("ghcr.io/acme/mysql-operator:0.1.0"), OperatorRunner)
    assert isinstance(runner_for("mysql:8.4"), MySQLRunner)
    assert type(runner_for("docker.io/library/mariadb:11.4")).__name__ == "MariaDBRunner"
    assert type(runner_for("busybox")).__name__ == "Unknown"


def test_rewrite_paths_maps_mounts_but_not_lookalikes() -> None:
    from pathlib import Path

    mounts = {"/var/lib/mysql": Path("/data")}
    assert rewrite_paths("log-bin=/var/lib/mysql/bin x=/var/lib/mysql-bin", mounts) == \
        "log-bin=/data/bin x=/var/lib/mysql-bin"


def test_parse_quantity_understands_binary_and_milli_suffixes() -> None:
    assert parse_quantity("1Gi") == 2**30
    assert parse_quantity("500m") == 0.5
