"""The e2e tier: a real control plane (sandbox), the chart installed with the real helm, kubectl."""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pymysql
import pytest
import yaml

from sandbox.demo import install_operator
from sandbox.instance import Sandbox
from tests.conftest import ROOT

T = TypeVar("T")
OPERATOR_NS = "mysql-operator"
CHART = ROOT / "charts" / "mysql-operator"
SANDBOX_NAME = os.environ.get("E2E_SANDBOX", "e2e")  # distinct names let runs go side by side

# Every flavor the sandbox runs for real (CONTRACTS.md item 1): e2e tests that run a database take
# `@pytest.mark.parametrize("flavor", FLAVORS)` (or a fixture with params=FLAVORS) and cluster_spec().
FLAVORS = ("mysql", "mariadb")
# The version each flavor runs at in the sandbox: MySQL 9.7 is the real mysqld 9.7.4 of the cached
# MySQL root (the node agent refuses any other MySQL version), MariaDB is Debian's 10.11.
VERSIONS = {"mysql": "9.7", "mariadb": "10.11"}
# Two image tags per flavor for an image rollout. Honest for MySQL: `mysql:9.7` is the series tag and
# `mysql:9.7.4` its exact release, which is what the series tag resolves to today, so both are the
# same binary here and the rollout changes the pods' image, not the server's version.
ROLLOUT_IMAGES = {"mysql": ("mysql:9.7", "mysql:9.7.4"), "mariadb": ("mariadb:10.11", "mariadb:10.11.9")}
# A version of the previous major/LTS series: a change back to it must be refused by the API.
DOWNGRADES = {"mysql": ("8.4", "mysql:8.4"), "mariadb": ("10.6", "mariadb:10.6")}


def cluster_spec(flavor: str, **overrides: Any) -> dict[str, Any]:
    """A MysqlCluster `spec` the sandbox really runs for `flavor`: 3 instances, small volumes deleted
    with the cluster. Keyword arguments (the API's camelCase field names) replace top-level fields."""
    if flavor not in FLAVORS:
        raise ValueError(f"unknown flavor {flavor!r}; the sandbox runs {FLAVORS}")
    spec: dict[str, Any] = {
        "flavor": flavor,
        "version": VERSIONS[flavor],
        "image": ROLLOUT_IMAGES[flavor][0],
        "instances": 3,
        "storage": {"size": "1Gi", "pvcRetention": "Delete"},
    }
    spec.update(overrides)
    return spec


def cluster_manifest(name: str, flavor: str, **overrides: Any) -> dict[str, Any]:
    """A whole MysqlCluster object named `name` with `cluster_spec(flavor, **overrides)`."""
    return {
        "apiVersion": "mysql.operator.dev/v1alpha1",
        "kind": "MysqlCluster",
        "metadata": {"name": name},
        "spec": cluster_spec(flavor, **overrides),
    }


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5) -> T:
    """Poll until check() returns something truthy; fail naming what was awaited."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as error:  # the apiserver or a server may be between states
            last = error
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


class Cluster:
    """kubectl/helm against the e2e sandbox, plus the few reads the tests share."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        result = self.sandbox.kubectl(*args, input=input, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result.stdout if check else result.stdout + result.stderr

    def kubectl_result(self, *args: str, input: str | None = None) -> Any:
        return self.sandbox.kubectl(*args, input=input, check=False)

    def helm(self, *args: str) -> str:
        result = self.sandbox.helm(*args, check=False)
        assert result.returncode == 0, f"helm {' '.join(args)} failed: {result.stderr}"
        return str(result.stdout)

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
        return dict(json.loads(self.kubectl("get", kind, name, "-n", namespace, "-o", "json")))

    def items(self, kind: str, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        args = ["get", kind, "-n", namespace, "-o", "json"]
        if selector:
            args += ["-l", selector]
        return list(json.loads(self.kubectl(*args))["items"])

    def apply(self, manifest: dict[str, Any] | str, namespace: str) -> None:
        text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
        self.kubectl("apply", "-n", namespace, "-f", "-", input=text)

    def create_namespace(self, namespace: str) -> str:
        self.kubectl("create", "namespace", namespace)
        return namespace

    def status(self, name: str, namespace: str) -> dict[str, Any]:
        return dict(self.get("mysqlcluster", name, namespace).get("status") or {})

    def condition(self, name: str, namespace: str, type_: str) -> dict[str, Any] | None:
        for cond in self.status(name, namespace).get("conditions") or []:
            if cond["type"] == type_:
                return dict(cond)
        return None

    def wait_ready(self, name: str, namespace: str, timeout: float = 240) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            cond = self.condition(name, namespace, "Ready")
            return self.status(name, namespace) if cond and cond["status"] == "True" else None

        return wait_for(ready, timeout, f"MysqlCluster {namespace}/{name} Ready")

    def secret(self, name: str, namespace: str) -> dict[str, str]:
        data = self.get("secret", name, namespace).get("data") or {}
        return {k: base64.b64decode(v).decode() for k, v in data.items()}

    def pod_ip(self, pod: str, namespace: str) -> str:
        return str(self.get("pod", pod, namespace)["status"]["podIP"])

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        items = self.items("events", namespace)
        return [e for e in items if e["involvedObject"].get("name") == name]

    def pod_logs(self, namespace: str, pod_prefix: str, container: str) -> str:
        """Container logs as the node agent keeps them (there is no kubelet log API here)."""
        files = sorted((self.sandbox.dir / "pods" / namespace).glob(f"{pod_prefix}*/{container}.log"))
        return "".join(path.read_text(errors="replace") for path in files)


def connect(host: str, user: str, password: str, database: str | None = None, port: int = 3306) -> Any:
    return pymysql.connect(
        host=host,
        port=port,
        user=user,
        password=password,
        database=database,
        connect_timeout=5,
        read_timeout=30,
        write_timeout=30,
        autocommit=True,
    )


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(SANDBOX_NAME, nodes=3)
    box.down()  # a leftover from an interrupted run
    shutil.rmtree(box.dir, ignore_errors=True)  # every run starts from an empty cluster
    box.up(timeout=900, progress=lambda line: print(line, flush=True))
    try:
        yield box
    finally:
        box.down()


@pytest.fixture(scope="session")
def cluster(sandbox: Sandbox) -> Cluster:
    return Cluster(sandbox)


@pytest.fixture(scope="session")
def operator(cluster: Cluster) -> Cluster:
    """The chart installed with helm, cluster-wide, and its operator pod running (as a pod, under RBAC)."""
    install_operator(cluster.sandbox, "logFormat=json")  # the JSON logs are checked too (test_replication)

    def running() -> bool:
        pods = cluster.items("pods", OPERATOR_NS, "app.kubernetes.io/instance=mysql-operator")
        return any(
            p["status"].get("phase") == "Running"
            and all(s.get("ready") for s in p["status"].get("containerStatuses", []))
            for p in pods
        )

    wait_for(running, 120, "the operator pod Running and Ready")
    return cluster


def load_example(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((ROOT / "examples" / name).read_text()) if doc]


def operator_log(cluster: Cluster) -> str:
    return cluster.pod_logs(OPERATOR_NS, "mysql-operator-", "operator")


def example_path(name: str) -> Path:
    return ROOT / "examples" / name


# ---- what a failed e2e test leaves in its report -----------------------------------------------------

DIAGNOSTIC_LOG_LINES = 40


def diagnostics(cluster: Cluster) -> str:
    """Every MysqlCluster's phase, primary, conditions and instances, and the operator's last warnings:
    enough to tell from a CI excerpt alone what the operator saw when a test failed."""
    lines: list[str] = []
    try:
        listed = json.loads(cluster.kubectl("get", "mysqlclusters", "-A", "-o", "json", check=False) or "{}")
    except ValueError:
        listed = {}
    for item in listed.get("items") or []:
        meta, status = item["metadata"], item.get("status") or {}
        lines.append(f"{meta['namespace']}/{meta['name']}: phase {status.get('phase')}, "
                     f"primary {status.get('primary')}")
        for cond in status.get("conditions") or []:
            lines.append(f"  {cond.get('type')}={cond.get('status')} {cond.get('reason')}: "
                         f"{str(cond.get('message'))[:300]}")
        for inst in status.get("instances") or []:
            lines.append(f"  {inst.get('name')} {inst.get('role')} ready={inst.get('ready')} "
                         f"{str(inst.get('message') or '')[:200]}")
        events = sorted((e for e in cluster.items("events", meta["namespace"])
                         if e["involvedObject"].get("name") == meta["name"]),
                        key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
        for event in events[-15:]:
            stamp = str(event.get("lastTimestamp") or event.get("eventTime") or "")[11:19]
            lines.append(f"  event {stamp} {event.get('reason')}: {str(event.get('message'))[:200]}")
    warnings = []
    for raw in operator_log(cluster).splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if entry.get("severity") in ("warning", "error", "critical"):
            warnings.append(f"{entry.get('timestamp', '')[11:23]} {entry.get('severity')} "
                            f"{str(entry.get('message'))[:300]}")
    lines.append(f"operator warnings (last {DIAGNOSTIC_LOG_LINES} of {len(warnings)}):")
    lines.extend(warnings[-DIAGNOSTIC_LOG_LINES:])
    return "\n".join(lines)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    found = [value for value in getattr(item, "funcargs", {}).values()
             if isinstance(value, Cluster) or isinstance(getattr(value, "cluster", None), Cluster)]
    if found:
        cluster = found[0] if isinstance(found[0], Cluster) else found[0].cluster
        try:
            report.sections.append(("operator and clusters at the failure", diagnostics(cluster)))
        except Exception as exc:  # diagnostics never hide the failure itself
            report.sections.append(("operator and clusters at the failure", f"unavailable: {exc!r}"))
