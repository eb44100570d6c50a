"""The StatefulSet that runs one mysqld per ordinal, with one volume each."""

from __future__ import annotations

from typing import Any

from mysql_operator import conventions as c
from mysql_operator.api.models import MysqlClusterSpec, PvcRetention
from mysql_operator.resources.config import CONFIG_KEY, INITDB_KEY, TLS_DIR, config_hash
from mysql_operator.resources.credentials import EXPORTER_CONFIG_KEY
from mysql_operator.resources.meta import ClusterRef
from mysql_operator.tls.manifests import TLS_VOLUME, server_secret_name

CONTAINER_NAME = "mysqld"
DATA_VOLUME = c.DATA_VOLUME
CONFIG_VOLUME = "config"
DATA_DIR = "/var/lib/mysql"
CONFIG_DIR = "/etc/mysql/conf.d"
MYSQL_UID = 999  # the mysql user of the official MySQL and MariaDB images
ANNOTATION_CONFIG_HASH = f"{c.API_GROUP}/config-hash"

INITDB_VOLUME = "initdb"
INITDB_DIR = "/docker-entrypoint-initdb.d"
# The official images' variables, by flavor: MYSQL_ROOT_PASSWORD or MARIADB_ROOT_PASSWORD, ...
_IMAGE_ENV_PREFIX = {c.Flavor.MYSQL: "MYSQL_", c.Flavor.MARIADB: "MARIADB_"}
_ADMIN_TOOL = {c.Flavor.MYSQL: "mysqladmin", c.Flavor.MARIADB: "mariadb-admin"}


def credentials_secret(spec: MysqlClusterSpec, cluster: str) -> str:
    """The Secret the passwords come from: the user's, or the one the operator generates."""
    return spec.credentials.secret_name or c.credentials_secret_name(cluster)


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _secret_key_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def mysqld_env(spec: MysqlClusterSpec, cluster: str) -> list[dict[str, Any]]:
    """The server's environment: what the image's first start creates (root on localhost only, the
    operator's user, passwords by Secret reference), and the pod's identity."""
    prefix, secret = _IMAGE_ENV_PREFIX[spec.flavor], credentials_secret(spec, cluster)
    return [
        _secret_key_env(f"{prefix}ROOT_PASSWORD", secret, c.KEY_ROOT_PASSWORD),
        {"name": f"{prefix}ROOT_HOST", "value": "localhost"},
        {"name": f"{prefix}USER", "value": c.OPERATOR_USER},
        _secret_key_env(f"{prefix}PASSWORD", secret, c.KEY_OPERATOR_PASSWORD),
        _field_env("POD_NAME", "metadata.name"),
        _field_env("POD_NAMESPACE", "metadata.namespace"),
        _field_env("POD_IP", "status.podIP"),
        _field_env("POD_INDEX", f"metadata.labels['{c.LABEL_POD_INDEX}']"),
    ]


def mysqld_args() -> list[str]:
    """Command-line options; kubelet expands $(POD_INDEX), which gives server_id = "1" + ordinal."""
    return [f"--server-id={c.SERVER_ID_PREFIX}$(POD_INDEX)"]


def ping_probe(spec: MysqlClusterSpec, *, period: int, failures: int, timeout: int = 5) -> dict[str, Any]:
    """A probe that asks mysqld itself over TCP (mysqladmin ping answers only when mysqld speaks)."""
    tool = _ADMIN_TOOL[spec.flavor]
    command = f'{tool} ping --host="$POD_IP" --port={c.MYSQL_PORT} --connect-timeout=3'
    return {
        "exec": {"command": ["sh", "-c", command]},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def default_affinity(cluster: str) -> dict[str, Any]:
    """Prefer one instance per node: losing a node then costs at most one instance."""
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": c.selector_labels(cluster)},
                    },
                }
            ]
        }
    }


SPREAD_TOPOLOGY_KEYS = ("topology.kubernetes.io/zone", "kubernetes.io/hostname")


def default_topology_spread(cluster: str) -> list[dict[str, Any]]:
    """Spread instances across zones, then nodes, as evenly as the scheduler can (a preference:
    ScheduleAnyway, so a cluster with fewer zones or nodes than instances still schedules)."""
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": c.selector_labels(cluster)},
        }
        for key in SPREAD_TOPOLOGY_KEYS
    ]


def _resources(spec: MysqlClusterSpec) -> dict[str, Any]:
    return {
        "requests": spec.resources.requests.wire(),
        "limits": spec.resources.limits.wire(),
    }


EXPORTER_CONTAINER = "exporter"
EXPORTER_CONFIG_VOLUME = "exporter-config"
EXPORTER_CONFIG_DIR = "/etc/mysqld-exporter"


def build_exporter_container(spec: MysqlClusterSpec) -> dict[str, Any]:
    """The mysqld_exporter sidecar: reads this pod's mysqld as a read-only user, serves :9104/metrics.

    Its login comes from a mounted option file (`--config.my-cnf`, the exporter-config Secret), never
    from the environment (with TLS on, that file asks for TLS). It has no readiness probe: a pod's
    readiness is the AND of its containers', and a metrics failure must never take an instance out of
    its Service."""
    return {
        "name": EXPORTER_CONTAINER,
        "image": spec.monitoring.exporter_image,
        "imagePullPolicy": spec.image_pull_policy,
        "args": [f"--config.my-cnf={EXPORTER_CONFIG_DIR}/{EXPORTER_CONFIG_KEY}"],
        "ports": [{"name": "metrics", "containerPort": c.EXPORTER_PORT, "protocol": "TCP"}],
        "volumeMounts": [
            {"name": EXPORTER_CONFIG_VOLUME, "mountPath": EXPORTER_CONFIG_DIR, "readOnly": True}
        ],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
        },
    }


def build_pod_template(ref: ClusterRef, spec: MysqlClusterSpec) -> dict[str, Any]:
    overrides = spec.pod_template
    labels = {**overrides.labels, **c.common_labels(ref.name)}
    annotations = {**overrides.annotations, ANNOTATION_CONFIG_HASH: config_hash(spec)}
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": spec.effective_image,
        "imagePullPolicy": spec.image_pull_policy,
        "args": mysqld_args(),
        "env": mysqld_env(spec, ref.name),
        "ports": [{"name": "mysql", "containerPort": c.MYSQL_PORT, "protocol": "TCP"}],
        "volumeMounts": [
            {"name": DATA_VOLUME, "mountPath": DATA_DIR},
            {"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": INITDB_VOLUME, "mountPath": INITDB_DIR, "readOnly": True},
        ],
        "startupProbe": ping_probe(spec, period=2, failures=150),
        "readinessProbe": ping_probe(spec, period=2, failures=2),
        "livenessProbe": ping_probe(spec, period=10, failures=6),
        "resources": _resources(spec),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
        },
    }
    config_map = c.config_map_name(ref.name)
    volumes: list[dict[str, Any]] = [
        {"name": name, "configMap": {"name": config_map, "items": [{"key": key, "path": key}]}}
        for name, key in ((CONFIG_VOLUME, CONFIG_KEY), (INITDB_VOLUME, INITDB_KEY))
    ]
    tls_secret = server_secret_name(spec, ref.name)
    if tls_secret:
        # Not a subPath mount: kubelet then refreshes the files when the Secret is rotated, and the
        # operator makes mysqld reload them. Group-readable for the mysql group (fsGroup).
        container["volumeMounts"].append({"name": TLS_VOLUME, "mountPath": TLS_DIR, "readOnly": True})
        volumes.append({"name": TLS_VOLUME, "secret": {"secretName": tls_secret, "defaultMode": 0o440}})
    containers = [container]
    if spec.monitoring.exporter:
        containers.append(build_exporter_container(spec))
        annotations.update({"prometheus.io/scrape": "true", "prometheus.io/port": str(c.EXPORTER_PORT)})
        volumes.append(
            {
                "name": EXPORTER_CONFIG_VOLUME,
                "secret": {"secretName": c.exporter_secret_name(ref.name), "defaultMode": 0o440},
            }
        )
    pod_spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 60,
        # mysqld never calls the Kubernetes API: no token in its pods, whatever ServiceAccount they run as.
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": MYSQL_UID,
            "runAsGroup": MYSQL_UID,
            "fsGroup": MYSQL_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "affinity": overrides.affinity or default_affinity(ref.name),
        "topologySpreadConstraints": (
            default_topology_spread(ref.name)
            if overrides.topology_spread_constraints is None
            else list(overrides.topology_spread_constraints)
        ),
        "containers": containers,
        "volumes": volumes,
    }
    if overrides.node_selector:
        pod_spec["nodeSelector"] = dict(overrides.node_selector)
    if overrides.tolerations:
        pod_spec["tolerations"] = list(overrides.tolerations)
    if overrides.priority_class_name:
        pod_spec["priorityClassName"] = overrides.priority_class_name
    if overrides.service_account_name:
        pod_spec["serviceAccountName"] = overrides.service_account_name
    return {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec}


def build_volume_claim_template(spec: MysqlClusterSpec) -> dict[str, Any]:
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": spec.storage.size}},
    }
    if spec.storage.storage_class_name:
        claim_spec["storageClassName"] = spec.storage.storage_class_name
    return {"metadata": {"name": DATA_VOLUME}, "spec": claim_spec}


def statefulset_replicas(spec: MysqlClusterSpec, primary_ordinal: int | None, cap: int | None = None) -> int:
    """Pods to keep: spec.instances, but never fewer than the primary needs (scale-down removes the
    highest ordinals; the operator moves the primary off them first, then this drops to instances).
    At most `cap` while a restore needs it (handlers/restore.py, `restore_cap`)."""
    if cap is not None:
        return min(cap, statefulset_replicas(spec, primary_ordinal))
    if primary_ordinal is not None and primary_ordinal >= spec.instances:
        return primary_ordinal + 1
    return spec.instances


def build_statefulset(ref: ClusterRef, spec: MysqlClusterSpec, replicas: int | None = None) -> dict[str, Any]:
    """`replicas` defaults to spec.instances (see statefulset_replicas)."""
    retention = "Delete" if spec.storage.pvc_retention == PvcRetention.DELETE else "Retain"
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": ref.metadata(c.statefulset_name(ref.name)),
        "spec": {
            "serviceName": c.headless_service_name(ref.name),
            "replicas": spec.instances if replicas is None else replicas,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": c.selector_labels(ref.name)},
            # The operator restarts pods itself: replicas first, one at a time, the primary last and
            # only after a switchover (handlers/day2.py).
            "updateStrategy": {"type": "OnDelete"},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": retention, "whenScaled": retention},
            "template": build_pod_template(ref, spec),
            "volumeClaimTemplates": [build_volume_claim_template(spec)],
        },
    }
