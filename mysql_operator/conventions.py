"""The one place for names, labels, users and keys that every layer of the operator agrees on."""

from __future__ import annotations

from enum import StrEnum

API_GROUP = "mysql.operator.dev"
API_VERSION = "v1alpha1"
KIND = "MysqlCluster"
PLURAL = "mysqlclusters"
SINGULAR = "mysqlcluster"
SHORT_NAMES = ["mysql"]

FIELD_MANAGER = "mysql-operator"
MYSQL_PORT = 3306
EXPORTER_PORT = 9104


class Flavor(StrEnum):
    """The server family a cluster runs; SQL and my.cnf differ per flavor."""

    MYSQL = "mysql"
    MARIADB = "mariadb"


class Role(StrEnum):
    """The role label value the operator keeps on each instance's pod."""

    PRIMARY = "primary"
    REPLICA = "replica"
    NONE = "none"


# Labels and annotations.
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_ROLE = f"{API_GROUP}/role"
LABEL_POD_INDEX = "apps.kubernetes.io/pod-index"
# Pods a user fenced (`kubectl mysql fence`), comma-separated: the operator keeps them out of Services.
ANNOTATION_FENCED = f"{API_GROUP}/fenced-instances"
APP_NAME = "mysql"
MANAGED_BY = "mysql-operator"

# Users the operator creates on every instance. Passwords come from the credentials Secret.
ROOT_USER = "root"
REPLICATION_USER = "mysqlop_repl"
OPERATOR_USER = "mysqlop_admin"
# A named lock (GET_LOCK) every schema session of the operator holds on the primary: the fence ends
# its holder with the client sessions, since the operator's user writes through MariaDB's read_only.
SCHEMA_WORK_LOCK = "mysqlop_schema_work"
EXPORTER_USER = "mysqlop_exporter"  # the mysqld_exporter sidecar (read-only monitoring grants)
BACKUP_USER = "mysqlop_backup"  # the backup and binlog Jobs log in as this user (read-only grants)

# Keys of the credentials Secret.
KEY_ROOT_PASSWORD = "root-password"
KEY_REPLICATION_PASSWORD = "replication-password"
KEY_OPERATOR_PASSWORD = "operator-password"
KEY_APP_USER = "app-user"
KEY_APP_PASSWORD = "app-password"
KEY_APP_DATABASE = "app-database"
KEY_EXPORTER_PASSWORD = "exporter-password"  # present when spec.monitoring.exporter is on
KEY_BACKUP_PASSWORD = "backup-password"  # added to a generated Secret by the first backup
REQUIRED_SECRET_KEYS = (KEY_ROOT_PASSWORD, KEY_REPLICATION_PASSWORD, KEY_OPERATOR_PASSWORD)

# server_id of the instance with StatefulSet ordinal N is int("1" + str(N)): unique for every
# ordinal, never 0, and computable by kubelet's $(VAR) expansion with no shell in the pod.
SERVER_ID_PREFIX = "1"


def server_id_for_ordinal(ordinal: int) -> int:
    """The server_id of the instance with the given StatefulSet ordinal."""
    return int(f"{SERVER_ID_PREFIX}{ordinal}")


def statefulset_name(cluster: str) -> str:
    return cluster


def headless_service_name(cluster: str) -> str:
    return cluster


def primary_service_name(cluster: str) -> str:
    return f"{cluster}-primary"


def replicas_service_name(cluster: str) -> str:
    return f"{cluster}-replicas"


def config_map_name(cluster: str) -> str:
    return f"{cluster}-config"


def credentials_secret_name(cluster: str) -> str:
    return f"{cluster}-credentials"


def exporter_secret_name(cluster: str) -> str:
    """The Secret with mysqld_exporter's option file (its password; mounted, never in env)."""
    return f"{cluster}-exporter-config"


def network_policy_name(cluster: str) -> str:
    return cluster


def pdb_name(cluster: str) -> str:
    return cluster


def pod_name(cluster: str, ordinal: int) -> str:
    return f"{statefulset_name(cluster)}-{ordinal}"


DATA_VOLUME = "data"  # the StatefulSet's volumeClaimTemplate: each instance's data directory


def data_claim_name(cluster: str, ordinal: int) -> str:
    """The PersistentVolumeClaim the StatefulSet makes for an instance's data (<template>-<pod>)."""
    return f"{DATA_VOLUME}-{pod_name(cluster, ordinal)}"


def ordinal_of_pod(pod: str) -> int:
    """The StatefulSet ordinal of a pod name (the digits after the last dash)."""
    return int(pod.rsplit("-", 1)[1])


def selector_labels(cluster: str) -> dict[str, str]:
    """Labels that select every instance pod of a cluster."""
    return {LABEL_NAME: APP_NAME, LABEL_INSTANCE: cluster}


def common_labels(cluster: str, component: str = "database") -> dict[str, str]:
    """Standard app.kubernetes.io labels that every owned object carries."""
    return {
        **selector_labels(cluster),
        LABEL_COMPONENT: component,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_PART_OF: "mysql-operator",
    }


# TLS. The server Secret has the keys of a kubernetes.io/tls Secret plus ca.crt (as cert-manager
# writes it), so a user's Secret, cert-manager's and the operator's look alike to the pods.
KEY_TLS_CA = "ca.crt"
KEY_TLS_CERT = "tls.crt"
KEY_TLS_KEY = "tls.key"
KEY_CA_KEY = "ca.key"  # only in the operator's CA Secret, never mounted into a pod


def tls_secret_name(cluster: str) -> str:
    """The server certificate Secret the operator issues (or asks cert-manager to write)."""
    return f"{cluster}-tls"


def ca_secret_name(cluster: str) -> str:
    """The operator-issued CA of one cluster (key included); never mounted into a pod."""
    return f"{cluster}-ca"


def cluster_domain_names(cluster: str, namespace: str) -> tuple[str, ...]:
    """The DNS names clients use for a cluster's Services, short and fully qualified."""
    names = []
    for service in (primary_service_name(cluster), replicas_service_name(cluster),
                    headless_service_name(cluster)):
        names += [f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local"]
    return tuple(names)


def pod_domain_name(cluster: str, namespace: str, ordinal: int) -> str:
    """The stable DNS name of one instance through the headless Service."""
    return f"{pod_name(cluster, ordinal)}.{headless_service_name(cluster)}.{namespace}.svc"
