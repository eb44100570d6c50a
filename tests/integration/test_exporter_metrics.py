"""The dashboard's mysqld panels ask for metric names a real mysqld_exporter serves.

A real exporter (Debian's prometheus-mysqld-exporter, the version the sandbox runs as the sidecar)
scrapes a real primary and a real replica; every `mysql_*` name in the dashboard must be in what it
served (the operator's own `mysql_operator_*` names are checked in tests/unit/test_dashboards.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import NET, Cluster, ready
from tests.integration.servers import ROOT_PASSWORD
from tests.unit.test_dashboards import dashboard_metric_names

pytestmark = pytest.mark.integration
EXPORTER = "prometheus-mysqld-exporter"


def scrape(address: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
                text = str(response.read().decode())
            if "\nmysql_up 1" in text:
                return text
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"exporter at {address} did not report mysql_up 1 in {timeout}s")
        time.sleep(0.3)


@pytest.fixture
def exporter_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="mysqlop-exporter-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start_exporter(host: str, listen: str, directory: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which(EXPORTER)
    assert binary, f"{EXPORTER} not installed (make apt)"
    cnf = directory / f"{listen.replace(':', '_')}.cnf"
    cnf.write_text(f"[client]\nuser=root\npassword={ROOT_PASSWORD}\nhost={host}\nport=3306\n")
    cnf.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k != "DATA_SOURCE_NAME"}
    return subprocess.Popen(
        [binary, f"--config.my-cnf={cnf}", f"--web.listen-address={listen}", "--collect.slave_status"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_every_exporter_metric_of_the_dashboard_is_served_by_a_real_exporter(
    cluster: Cluster, exporter_dir: Path
) -> None:
    cluster.reconcile_until(lambda r: ready(r) and r.primary == 0, timeout=120)
    processes = [
        start_exporter(server.host, f"127.{NET}.21.{server.ordinal + 1}:9104", exporter_dir)
        for server in cluster.servers[:2]
    ]
    try:
        served = set()
        for ordinal in range(2):
            text = scrape(f"127.{NET}.21.{ordinal + 1}:9104")
            served |= {
                line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and line[0] != "#"
            }
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
    wanted = {name for name in dashboard_metric_names() if not name.startswith("mysql_operator_")}
    assert wanted, "the dashboard has no exporter panels"
    assert wanted <= served, f"not served by mysqld_exporter: {sorted(wanted - served)}"
