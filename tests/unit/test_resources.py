"""Every builder: what it builds from a spec, with owner references and standard labels."""

from __future__ import annotations

from typing import Any

import pytest

from mysql_operator import conventions as c
from mysql_operator.api.models import MysqlClusterSpec
from mysql_operator.handlers.objects import owned_objects
from mysql_operator.resources.config import build_config_map, config_hash, render_my_cnf
from mysql_operator.resources.credentials import (
    build_credentials_secret,
    generated_values,
    missing_keys,
)
from mysql_operator.resources.meta import ClusterRef
from mysql_operator.resources.services import (
    build_headless_service,
    build_pod_disruption_budget,
    build_primary_service,
    build_replicas_service,
)
from mysql_operator.resources.statefulset import build_statefulset

REF = ClusterRef(name="shop-db", namespace="shop", uid="1234-uid")


def spec(**fields: Any) -> MysqlClusterSpec:
    return MysqlClusterSpec.model_validate(fields)


def container(sts: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = sts["spec"]["template"]["spec"]["containers"][0]
    return result


@pytest.mark.parametrize("manifest", owned_objects(REF, spec()), ids=lambda m: m["kind"])
def test_every_owned_object_is_owned_by_the_cluster_and_labelled(manifest: dict[str, Any]) -> None:
    meta = manifest["metadata"]
    assert meta["namespace"] == "shop"
    (owner,) = meta["ownerReferences"]
    assert owner == {
        "apiVersion": "mysql.operator.dev/v1alpha1",
        "kind": "MysqlCluster",
        "name": "shop-db",
        "uid": "1234-uid",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    labels = meta["labels"]
    assert labels["app.kubernetes.io/instance"] == "shop-db"
    assert labels["app.kubernetes.io/managed-by"] == "mysql-operator"
    assert labels["app.kubernetes.io/name"] == "mysql"


def test_builders_are_pure_and_deterministic() -> None:
    assert owned_objects(REF, spec()) == owned_objects(REF, spec())


def test_statefulset_one_volume_per_instance_parallel_and_headless() -> None:
    sts = build_statefulset(REF, spec(instances=5, storage={"size": "20Gi", "storageClassName": "fast"}))
    assert sts["metadata"]["name"] == "shop-db"
    assert sts["spec"]["replicas"] == 5
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert sts["spec"]["serviceName"] == "shop-db"
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }


def test_statefulset_pvc_retention_delete() -> None:
    sts = build_statefulset(REF, spec(storage={"pvcRetention": "Delete"}))
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"


def test_server_id_comes_from_the_ordinal_label() -> None:
    ctr = container(build_statefulset(REF, spec()))
    assert "--server-id=1$(POD_INDEX)" in ctr["args"]
    index_env = next(e for e in ctr["env"] if e["name"] == "POD_INDEX")
    assert (
        index_env["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    assert [c.server_id_for_ordinal(n) for n in (0, 1, 9, 10)] == [10, 11, 19, 110]


@pytest.mark.parametrize(
    ("flavor", "tool", "env"),
    [("mysql", "mysqladmin", "MYSQL_ROOT_PASSWORD"), ("mariadb", "mariadb-admin", "MARIADB_ROOT_PASSWORD")],
)
def test_probes_ask_mysqld_and_root_password_comes_from_the_secret(flavor: str, tool: str, env: str) -> None:
    ctr = container(build_statefulset(REF, spec(flavor=flavor)))
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        command = ctr[probe]["exec"]["command"]
        assert command[:2] == ["sh", "-c"] and command[2].startswith(f"{tool} ping --host=")
    root = next(e for e in ctr["env"] if e["name"] == env)
    assert root["valueFrom"]["secretKeyRef"] == {"name": "shop-db-credentials", "key": "root-password"}


def test_user_secret_is_referenced_when_given() -> None:
    ctr = container(build_statefulset(REF, spec(credentials={"secretName": "mine"})))
    assert ctr["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "mine"


def test_pod_runs_as_non_root_with_preferred_anti_affinity() -> None:
    pod = build_statefulset(REF, spec())["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 999
    preferred = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in pod["affinity"]["podAntiAffinity"]
    assert pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False


def test_pod_template_overrides_are_merged() -> None:
    s = spec(
        podTemplate={
            "labels": {"team": "a"},
            "annotations": {"x": "y"},
            "nodeSelector": {"disk": "ssd"},
            "tolerations": [{"key": "db", "operator": "Exists"}],
            "affinity": {"nodeAffinity": {}},
        }
    )
    template = build_statefulset(REF, s)["spec"]["template"]
    assert template["metadata"]["labels"]["team"] == "a"
    assert template["metadata"]["labels"]["app.kubernetes.io/instance"] == "shop-db"
    assert template["metadata"]["annotations"]["x"] == "y"
    assert template["spec"]["nodeSelector"] == {"disk": "ssd"}
    assert template["spec"]["tolerations"] == [{"key": "db", "operator": "Exists"}]
    assert template["spec"]["affinity"] == {"nodeAffinity": {}}


def test_config_change_changes_the_pod_template_hash() -> None:
    a = build_statefulset(REF, spec())["spec"]["template"]["metadata"]["annotations"]
    restarting = spec(mysqlConfig={"innodb_buffer_pool_size": "2G"})  # not applied live: pods roll
    b = build_statefulset(REF, restarting)["spec"]["template"]["metadata"]
    assert a["mysql.operator.dev/config-hash"] != b["annotations"]["mysql.operator.dev/config-hash"]
    assert config_hash(spec()) == config_hash(spec())


def test_my_cnf_mariadb_has_gtid_binlog_and_read_only() -> None:
    text = render_my_cnf(spec(flavor="mariadb", mysqlConfig={"max_connections": "300"}))
    for line in (
        "[mysqld]",
        "log_bin = mysql-bin",
        "log_slave_updates = ON",
        "gtid_strict_mode = ON",
        "read_only = ON",
        "max_connections = 300",
    ):
        assert line in text.splitlines()
    assert "gtid_mode" not in text and "server_id" not in text


def test_my_cnf_mysql_has_gtid_mode_and_semi_sync_plugins_when_asked() -> None:
    plain = render_my_cnf(spec(flavor="mysql")).splitlines()
    assert {
        "gtid_mode = ON",
        "enforce_gtid_consistency = ON",
        "log_replica_updates = ON",
        "read_only = ON",
    } <= set(plain)
    assert not any("semisync" in line for line in plain)
    assert "plugin_load_add = mysql_clone.so" in plain  # a fenced instance can still clone
    semi = render_my_cnf(spec(flavor="mysql", replication={"mode": "semi-sync"})).splitlines()
    assert "plugin_load_add = semisync_source.so" in semi and "plugin_load_add = semisync_replica.so" in semi


def test_config_map_holds_my_cnf() -> None:
    cm = build_config_map(REF, spec())
    assert cm["metadata"]["name"] == "shop-db-config"
    assert cm["data"]["my.cnf"] == render_my_cnf(spec())


def test_services_select_by_role() -> None:
    headless = build_headless_service(REF)
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    primary = build_primary_service(REF, spec())
    assert primary["metadata"]["name"] == "shop-db-primary"
    assert primary["spec"]["selector"]["mysql.operator.dev/role"] == "primary"
    assert primary["spec"]["type"] == "ClusterIP" and "nodePort" not in primary["spec"]["ports"][0]
    replicas = build_replicas_service(REF)
    assert replicas["metadata"]["name"] == "shop-db-replicas"
    assert replicas["spec"]["selector"]["mysql.operator.dev/role"] == "replica"


def test_primary_service_type_node_port_and_annotations() -> None:
    primary = build_primary_service(
        REF, spec(service={"type": "NodePort", "nodePort": 30306, "annotations": {"a": "b"}})
    )
    assert primary["spec"]["type"] == "NodePort"
    assert primary["spec"]["ports"][0]["nodePort"] == 30306
    assert primary["metadata"]["annotations"] == {"a": "b"}


@pytest.mark.parametrize(("instances", "min_available"), [(1, 0), (2, 0), (3, 1), (5, 3)])
def test_pdb_allows_one_replica_down(instances: int, min_available: int) -> None:
    pdb = build_pod_disruption_budget(REF, MysqlClusterSpec.model_validate({"instances": instances}))
    assert pdb["spec"] == {
        "minAvailable": min_available,
        # the primary has a budget of its own (tests/unit/test_drain.py): one budget per pod
        "selector": {"matchLabels": {**c.selector_labels("shop-db"), c.LABEL_ROLE: c.Role.REPLICA.value}},
    }


def test_generated_credentials_are_random_and_complete() -> None:
    values = generated_values(spec(application={"database": "shop", "user": "app"}), None)
    assert set(values) == {
        "root-password",
        "replication-password",
        "operator-password",
        "app-password",
        "app-user",
        "app-database",
    }
    assert values["app-user"] == "app" and values["app-database"] == "shop"
    assert len(values["root-password"]) >= 32
    assert len({values["root-password"], values["replication-password"], values["operator-password"]}) == 3
    assert generated_values(spec(), None)["root-password"] != generated_values(spec(), None)["root-password"]


def test_existing_credentials_are_never_regenerated() -> None:
    existing = {"root-password": "r", "replication-password": "p", "operator-password": "o"}
    assert generated_values(spec(), existing) == {}
    added = generated_values(spec(application={"database": "shop", "user": "app"}), existing)
    assert set(added) == {"app-password", "app-user", "app-database"}


def test_missing_keys_of_a_user_secret() -> None:
    assert missing_keys(spec(), {"root-password": "x"}) == ["replication-password", "operator-password"]
    assert missing_keys(
        spec(application={"database": "d", "user": "u"}),
        {"root-password": "x", "replication-password": "y", "operator-password": "z"},
    ) == ["app-password"]
    assert missing_keys(
        spec(), {"root-password": "", "replication-password": "y", "operator-password": "z"}
    ) == ["root-password"]


def test_credentials_secret_manifest() -> None:
    secret = build_credentials_secret(REF, {"root-password": "s3cret"})
    assert secret["metadata"]["name"] == "shop-db-credentials"
    assert secret["stringData"] == {"root-password": "s3cret"}
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "1234-uid"


def test_instances_spread_across_zones_and_nodes_by_default_as_a_preference() -> None:
    from mysql_operator.api.models import MysqlClusterSpec
    from mysql_operator.resources.meta import ClusterRef
    from mysql_operator.resources.statefulset import build_pod_template

    ref = ClusterRef(name="shop", namespace="ns", uid="u")
    spread = build_pod_template(ref, MysqlClusterSpec())["spec"]["topologySpreadConstraints"]
    assert [(s["topologyKey"], s["maxSkew"], s["whenUnsatisfiable"]) for s in spread] == [
        ("topology.kubernetes.io/zone", 1, "ScheduleAnyway"),
        ("kubernetes.io/hostname", 1, "ScheduleAnyway"),
    ]
    assert all(s["labelSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "shop" for s in spread)
    custom = [{"maxSkew": 2, "topologyKey": "rack", "whenUnsatisfiable": "DoNotSchedule"}]
    spec = MysqlClusterSpec.model_validate({"podTemplate": {"topologySpreadConstraints": custom}})
    assert build_pod_template(ref, spec)["spec"]["topologySpreadConstraints"] == custom
    none = MysqlClusterSpec.model_validate({"podTemplate": {"topologySpreadConstraints": []}})
    assert build_pod_template(ref, none)["spec"]["topologySpreadConstraints"] == []
