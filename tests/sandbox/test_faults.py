"""`sandbox down` undoes every fault that outlives a pod: marked packet-filter rules (this sandbox's
only) and paused processes. Real iptables and real processes; no control plane needed."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox import Sandbox, processes
from sandbox.faults import FaultError, iptables, isolation_rules, listed_rules, marker, remove_rules

UNUSED_IP = "127.251.9.9"  # a pod address of no sandbox: dropping its packets harms nobody


def add_rules(name: str, target: str) -> None:
    for rule in isolation_rules(UNUSED_IP, None, marker(name, target)):
        subprocess.run([iptables(), "-w", "5", "-I", *rule], check=True, timeout=30)


def test_down_removes_its_rules_and_ends_paused_processes_and_leaves_other_rules(tmp_path: Path) -> None:
    box = Sandbox("faults-teardown-check", dir=tmp_path / "run")
    box.dir.mkdir(parents=True)
    add_rules(box.name, "ns/pod-0")
    add_rules("faults-teardown-other", "ns/pod-0")
    paused = processes.spawn([sys.executable, "-c", "import time; time.sleep(300)"], owner=box.dir,
                             log=box.dir / "sleep.log")
    try:
        processes.signal_group(paused.pid, signal.SIGSTOP)
        assert len(listed_rules(box.name)) == 4
        box.down()
        assert listed_rules(box.name) == []
        assert not processes.owned_pids(box.dir)
        assert len(listed_rules("faults-teardown-other")) == 4, "another sandbox's rules were touched"
    finally:
        remove_rules("faults-teardown-other")
        remove_rules(box.name)
        processes.stop_group(paused, grace=0)
    paused.wait(timeout=5)
    assert listed_rules("faults-teardown-other") == []


def test_heal_of_one_pod_leaves_a_pod_with_a_longer_name_isolated() -> None:
    name = "faults-prefix-check"
    add_rules(name, "ns/pod")
    add_rules(name, "ns/pod-1")
    try:
        assert remove_rules(name, "ns/pod") == 4
        assert len(listed_rules(name, "ns/pod-1")) == 4
    finally:
        remove_rules(name)
    assert listed_rules(name) == []


@pytest.mark.parametrize("address", ["10.0.0.5", "127.0.0.1", "192.168.1.4"])
def test_only_sandbox_pod_addresses_are_ever_filtered(address: str) -> None:
    with pytest.raises(FaultError):
        isolation_rules(address, None, marker("x", "ns/pod"))
