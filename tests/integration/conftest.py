"""Fixtures: three real servers on 127.<IT_NET>.20.1-3, of each flavor, and a driver for reconcile_topology.

`servers` (and `cluster` on top of it) is parametrized over FLAVORS: every test that uses them runs on
real MariaDB and on real MySQL.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mysql_operator.backup.commands import MYSQL_TOOLS_DIR_ENV
from mysql_operator.conventions import (
    KEY_APP_DATABASE,
    KEY_APP_PASSWORD,
    KEY_APP_USER,
    KEY_OPERATOR_PASSWORD,
    KEY_REPLICATION_PASSWORD,
    KEY_ROOT_PASSWORD,
    Flavor,
)
from mysql_operator.topology.decide import ReplicationMode
from mysql_operator.topology.reconcile import (
    InstanceEndpoint,
    TopologyMemory,
    TopologyResult,
    TopologySettings,
    reconcile_topology,
)
from sandbox import mysql_root
from tests.integration.servers import FLAVORS, ROOT_PASSWORD, DbServer, MysqlTemplate, make_server

REPO_ROOT = Path(__file__).resolve().parents[2]
# Side-by-side runs (several work trees on one machine) set IT_NET to their own second octet.
NET = os.environ.get("IT_NET", "0")
HOSTS = tuple(f"127.{NET}.20.{n}" for n in (1, 2, 3))
CREDENTIALS = {
    KEY_ROOT_PASSWORD: ROOT_PASSWORD,
    KEY_REPLICATION_PASSWORD: "repl-Secret-pw",
    KEY_OPERATOR_PASSWORD: "op-Secret-pw",
    KEY_APP_USER: "app",
    KEY_APP_PASSWORD: "app-Secret-pw",
    KEY_APP_DATABASE: "shop",
}
TICK = 0.2  # seconds between passes, as a fast kopf timer would


@dataclass
class Cluster:
    servers: list[DbServer]
    mode: ReplicationMode = ReplicationMode.ASYNC
    settings: TopologySettings = field(
        default_factory=lambda: TopologySettings(grace_period=1.0, relay_apply_timeout=20.0)
    )
    memory: TopologyMemory = field(default_factory=TopologyMemory)
    results: list[TopologyResult] = field(default_factory=list)

    @property
    def flavor(self) -> Flavor:
        return self.servers[0].flavor

    @property
    def endpoints(self) -> list[InstanceEndpoint]:
        return [InstanceEndpoint(s.ordinal, s.pod_name, s.host) for s in self.servers]

    def reconcile(self, switchover_to: int | None = None) -> TopologyResult:
        result = reconcile_topology(
            self.endpoints,
            CREDENTIALS,
            self.flavor,
            self.mode,
            self.memory,
            switchover_to,
            time.time(),
            self.settings,
        )
        self.memory = result.memory
        self.results.append(result)
        return result

    def reconcile_until(
        self, done: Callable[[TopologyResult], bool], timeout: float = 60.0, switchover_to: int | None = None
    ) -> TopologyResult:
        """Reconcile every TICK until `done(result)`; fails the test after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.reconcile(switchover_to)
            if done(result):
                return result
            if time.monotonic() > deadline:
                conditions = [(c.type, c.status, c.reason, c.message) for c in result.conditions]
                pytest.fail(
                    f"not reached in {timeout}s: primary={result.primary} {conditions} "
                    f"problems={result.problems} actions={result.actions}"
                )
            time.sleep(TICK)

    def events(self) -> list[tuple[str, str]]:
        return [(e.reason, e.message) for r in self.results for e in r.events]


def ready(result: TopologyResult) -> bool:
    return next(c for c in result.conditions if c.type == "Ready").status


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s: {what}")
        time.sleep(0.05)


@pytest.fixture(scope="session", autouse=True)
def mysql_tools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """MYSQL_TOOLS_DIR for the session (and the backup CLI it starts): MySQL's client tools laid out by
    the script the Dockerfile runs (hack/collect-mysql-client.sh), from the cached MySQL root, so the
    backup tests run the tools as the operator's image carries them."""
    layout = tmp_path_factory.mktemp("opt-mysql")
    subprocess.run(
        [str(REPO_ROOT / "hack" / "collect-mysql-client.sh"), str(layout)],
        env={**os.environ, "SYSROOT": str(mysql_root.root())},
        check=True,
        capture_output=True,
        timeout=300,
    )
    previous = os.environ.get(MYSQL_TOOLS_DIR_ENV)
    os.environ[MYSQL_TOOLS_DIR_ENV] = str(layout / "bin")
    yield layout / "bin"
    if previous is None:
        os.environ.pop(MYSQL_TOOLS_DIR_ENV, None)
    else:
        os.environ[MYSQL_TOOLS_DIR_ENV] = previous


@pytest.fixture(scope="session", autouse=True)
def mysql_template() -> Iterator[None]:
    """The MySQL template data directory lives as long as the test session (made on first use)."""
    yield
    if MysqlTemplate.init_seconds is not None:
        print(f"\nMYSQL initialize-insecure took {MysqlTemplate.init_seconds:.1f}s (once per session)")
    MysqlTemplate.discard()


@pytest.fixture(params=FLAVORS)
def flavor(request: pytest.FixtureRequest) -> str:
    """Each flavor in turn: tests (and fixtures) that take it run on MariaDB and on MySQL."""
    return str(request.param)


@pytest.fixture
def servers(flavor: str) -> Iterator[list[DbServer]]:
    base = Path(tempfile.mkdtemp(prefix="mysqlop-it-"))
    started = [make_server(flavor, i, host, base / f"db-{i}") for i, host in enumerate(HOSTS)]
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(lambda s: s.start(), started))
        yield started
    finally:
        for server in started:
            server.kill()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def cluster(servers: list[DbServer]) -> Cluster:
    return Cluster(servers)
