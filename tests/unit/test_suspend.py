from __future__ import annotations

import pytest
from pydantic import ValidationError

from mysql_operator.api.crd import mysqlcluster_crd
from mysql_operator.api.models import MysqlClusterSpec
from mysql_operator.handlers.suspend import (
    SUSPENDED,
    is_suspended,
    observed_instances,
    suspended_conditions,
)
from mysql_operator.mysql.observe import InstanceObservation

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def test_suspend_is_off_by_default_and_a_boolean() -> None:
    assert MysqlClusterSpec().suspend is False
    assert MysqlClusterSpec.model_validate({"suspend": True}).suspend is True
    with pytest.raises(ValidationError):
        MysqlClusterSpec.model_validate({"suspend": "maybe"})
    assert not is_suspended({}) and is_suspended({"suspend": True})


def test_kubectl_get_shows_whether_a_cluster_is_suspended() -> None:
    columns = mysqlcluster_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    assert {"name": "Suspended", "type": "boolean", "jsonPath": ".spec.suspend"} in columns


def test_suspending_sets_the_condition_and_resuming_clears_it() -> None:
    ready = [{"type": "Ready", "status": "True", "reason": "R", "lastTransitionTime": T0}]
    assert suspended_conditions(ready, False, 1, T0) == ready  # never suspended: no condition at all
    on = suspended_conditions(ready, True, 2, T0)
    cond = next(c for c in on if c["type"] == SUSPENDED)
    assert cond["status"] == "True" and "changes nothing" in cond["message"]
    assert suspended_conditions(on, True, 3, T1) == [
        {**c, "observedGeneration": 3} if c["type"] == SUSPENDED else c for c in on
    ]  # no transition while it stays on
    off = next(c for c in suspended_conditions(on, False, 4, T1) if c["type"] == SUSPENDED)
    assert (off["status"], off["reason"], off["lastTransitionTime"]) == ("False", "Resumed", T1)


def test_a_suspended_cluster_reports_what_it_observes_without_claiming_readiness() -> None:
    seen = [
        InstanceObservation(
            ordinal=1, host="127.0.0.2", reachable=True, gtid_executed="0-10-5", seconds_behind=3
        ),
        InstanceObservation(
            ordinal=0, host="127.0.0.1", reachable=True, read_only=False, gtid_executed="0-10-5"
        ),
        InstanceObservation(ordinal=2, host="127.0.0.3", reachable=False, error="connection refused"),
    ]
    entries = observed_instances(seen, {0: "db-0", 1: "db-1", 2: "db-2"})
    assert [(e["name"], e["role"], e["ready"]) for e in entries] == [
        ("db-0", "primary", False),
        ("db-1", "replica", False),
        ("db-2", "none", False),
    ]
    assert entries[1]["lagSeconds"] == 3.0 and entries[0]["gtid"] == "0-10-5"
    assert entries[2]["message"] == "connection refused"


def test_a_fenced_pod_is_labelled_out_of_every_service() -> None:
    from mysql_operator.handlers.suspend import without_fenced

    meta = {"annotations": {"mysql.operator.dev/fenced-instances": "db-1, db-2"}}
    labels = {"db-0": "primary", "db-1": "replica", "db-2": "primary"}
    assert without_fenced(labels, meta) == {"db-0": "primary", "db-1": "none", "db-2": "none"}
    assert without_fenced(labels, {}) == labels
