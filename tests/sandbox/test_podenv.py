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


def test_operator_runner_maps_mount_paths_and_the_termination_log_to_local_files() -> None:
    from pathlib import Path

    from sandbox.images import ContainerContext

    log = "/dev/termination-log"
    container = {"name": "backup", "image": "mysql-operator:1", "terminationMessagePath": log}
    ctx = ContainerContext(
        pod={"metadata": {"name": "job-x", "uid": "u"}}, container=container,
        env={"BACKUP_PVC_ROOT": "/backup", "OTHER": "/backups-not-a-mount"},
        command=["python", "-m", "mysql_operator"], args=["backup", "--termination-log", log],
        mounts={"/backup": Path("/pv/b1"), "/tmp": Path("/pods/x/tmp")}, pod_ip="127.0.0.9",
        work_dir=Path("/pods/x/backup"), socket_dir=Path("/s"),
        service_account_kubeconfig=lambda: Path("/pods/x/kubeconfig"),
        termination_log=Path("/pods/x/backup/termination-log"),
    )
    launch = OperatorRunner().launch(ctx)
    assert launch.argv[1:] == ["-m", "mysql_operator", "backup", "--termination-log",
                               "/pods/x/backup/termination-log"]
    assert launch.env["BACKUP_PVC_ROOT"] == "/pv/b1" and launch.env["OTHER"] == "/backups-not-a-mount"
    assert launch.env["TMPDIR"] == "/pods/x/tmp"
