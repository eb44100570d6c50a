"""Spec defaults and every validation rule: a valid and an invalid example each."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mysql_operator.api.models import (
    MysqlClusterSpec,
    ReplicationMode,
    check_update,
    quantity_value,
)
from mysql_operator.conventions import Flavor


def spec(**fields: Any) -> MysqlClusterSpec:
    return MysqlClusterSpec.model_validate(fields)


def test_defaults_make_a_three_instance_mysql_84_cluster() -> None:
    s = spec()
    assert s.instances == 3
    assert s.flavor == Flavor.MYSQL
    assert s.effective_version == "8.4"
    assert s.effective_image == "mysql:8.4"
    assert s.storage.size == "10Gi"
    assert s.storage.pvc_retention.value == "Retain"
    assert s.replication.mode == ReplicationMode.ASYNC
    assert s.replication.failover_grace_seconds == 10
    assert s.service.type.value == "ClusterIP"
    assert s.credentials.secret_name is None
    assert s.application is None
    assert s.resources.requests.memory == "512Mi"


def test_mariadb_flavor_defaults_to_10_11_official_image() -> None:
    s = spec(flavor="mariadb")
    assert s.effective_version == "10.11"
    assert s.effective_image == "mariadb:10.11"


def test_explicit_image_wins_over_flavor_default() -> None:
    image = "registry.local/db/mariadb:11.4"
    assert spec(flavor="mariadb", image=image).effective_image == image


def test_spec_round_trips_in_camel_case() -> None:
    s = spec(replication={"failoverGraceSeconds": 5}, storage={"storageClassName": "fast"})
    wire = s.wire()
    assert wire["replication"]["failoverGraceSeconds"] == 5
    assert wire["storage"]["storageClassName"] == "fast"
    assert MysqlClusterSpec.model_validate(wire) == s


VALID_AND_INVALID = [
    ("instances range", {"instances": 9}, {"instances": 10}),
    ("instances at least 1", {"instances": 1}, {"instances": 0}),
    ("flavor enum", {"flavor": "mariadb"}, {"flavor": "postgres"}),
    ("version pattern", {"version": "8.4.3"}, {"version": "latest"}),
    ("image pattern", {"image": "mysql:9.7"}, {"image": "Bad Image"}),
    ("storage size quantity", {"storage": {"size": "512Mi"}}, {"storage": {"size": "ten gigs"}}),
    ("pvc retention enum", {"storage": {"pvcRetention": "Delete"}}, {"storage": {"pvcRetention": "Keep"}}),
    (
        "cpu quantity",
        {"resources": {"requests": {"cpu": "500m"}}},
        {"resources": {"requests": {"cpu": "fast"}}},
    ),
    ("replication mode enum", {"replication": {"mode": "semi-sync"}}, {"replication": {"mode": "sync"}}),
    (
        "grace period range",
        {"replication": {"failoverGraceSeconds": 1}},
        {"replication": {"failoverGraceSeconds": 0}},
    ),
    (
        "switchover target names an instance",
        {"instances": 3, "replication": {"switchoverTo": 2}},
        {"instances": 3, "replication": {"switchoverTo": 3}},
    ),
    (
        "semi-sync needs two instances",
        {"instances": 2, "replication": {"mode": "semi-sync"}},
        {"instances": 1, "replication": {"mode": "semi-sync"}},
    ),
    ("service type enum", {"service": {"type": "NodePort"}}, {"service": {"type": "ExternalName"}}),
    (
        "node port range",
        {"service": {"type": "NodePort", "nodePort": 30306}},
        {"service": {"type": "NodePort", "nodePort": 80}},
    ),
    (
        "node port needs a NodePort service",
        {"service": {"type": "LoadBalancer", "nodePort": 30306}},
        {"service": {"nodePort": 30306}},
    ),
    (
        "mysqlConfig refuses operator-owned keys",
        {"mysqlConfig": {"max_connections": "500"}},
        {"mysqlConfig": {"server-id": "7"}},
    ),
    (
        "mysqlConfig key names",
        {"mysqlConfig": {"innodb_buffer_pool_size": "1G"}},
        {"mysqlConfig": {"Max Connections": "5"}},
    ),
    (
        "application database pattern",
        {"application": {"database": "shop", "user": "app"}},
        {"application": {"database": "shop; DROP", "user": "app"}},
    ),
    (
        "application needs a user",
        {"application": {"database": "shop", "user": "app"}},
        {"application": {"database": "shop"}},
    ),
    (
        "credentials secret name",
        {"credentials": {"secretName": "my-secret"}},
        {"credentials": {"secretName": "My_Secret"}},
    ),
    ("unknown fields are refused", {"instances": 2}, {"instancez": 2}),
]


@pytest.mark.parametrize(
    ("rule", "valid", "invalid"), VALID_AND_INVALID, ids=[r[0] for r in VALID_AND_INVALID]
)
def test_each_rule_accepts_the_valid_and_refuses_the_invalid(
    rule: str, valid: dict[str, Any], invalid: dict[str, Any]
) -> None:
    spec(**valid)
    with pytest.raises(ValidationError):
        spec(**invalid)


def test_operator_owned_key_error_names_the_key() -> None:
    with pytest.raises(ValidationError, match="server-id"):
        spec(mysqlConfig={"server-id": "7", "read_only": "OFF"})


def test_flavor_is_immutable() -> None:
    assert check_update(spec(flavor="mysql"), spec(flavor="mysql")) == []
    assert check_update(spec(flavor="mysql"), spec(flavor="mariadb")) == ["flavor is immutable"]


def test_storage_may_grow_but_never_shrink() -> None:
    assert check_update(spec(storage={"size": "10Gi"}), spec(storage={"size": "20Gi"})) == []
    assert check_update(spec(storage={"size": "1Ti"}), spec(storage={"size": "1024Gi"})) == []
    assert check_update(spec(storage={"size": "10Gi"}), spec(storage={"size": "9Gi"})) == [
        "storage.size may grow but never shrink"
    ]


def test_storage_class_is_immutable_once_set() -> None:
    assert check_update(spec(), spec(storage={"storageClassName": "fast"})) == []
    assert check_update(
        spec(storage={"storageClassName": "fast"}), spec(storage={"storageClassName": "slow"})
    ) == ["storage.storageClassName is immutable"]


def test_replication_mode_is_immutable() -> None:
    assert check_update(spec(replication={"mode": "async"}), spec(replication={"mode": "semi-sync"})) == [
        "replication.mode cannot be changed on a running cluster"
    ]


@pytest.mark.parametrize(
    ("text", "value"), [("1Gi", 2**30), ("500m", 0.5), ("2", 2), ("1.5G", 1.5e9), ("10Ki", 10240)]
)
def test_quantity_values(text: str, value: float) -> None:
    assert quantity_value(text) == value


def test_quantity_refuses_garbage() -> None:
    with pytest.raises(ValueError):
        quantity_value("12Zi")
