"""The MysqlCluster API: pydantic models of spec and status, the single source of the CRD schema.

Every default lives here. Rules that the CRD schema can express are carried into it (ranges, enums,
patterns, CEL); the same rules are checked again by the models, so a spec that got past an older
schema is still caught before the operator acts on it.
"""

from __future__ import annotations

import itertools
import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, JsonValue, StringConstraints, field_validator, model_validator

from mysql_operator import conventions as c
from mysql_operator.api import mycnf
from mysql_operator.api.backup import BackupSchedule, RestoreFrom
from mysql_operator.api.base import _Model, cel, nested
from mysql_operator.conventions import Flavor

QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
VERSION_PATTERN = r"^[0-9]+\.[0-9]+(\.[0-9]+)?$"
IMAGE_PATTERN = r"^[a-z0-9]([a-z0-9._/:@-]*[a-z0-9])?$"
CONFIG_KEY_PATTERN = mycnf.KEY_PATTERN
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"

DEFAULT_VERSION = {Flavor.MYSQL: "8.4", Flavor.MARIADB: "10.11"}
# MySQL's supported LTS series, oldest first: an upgrade goes from one to the next, never back, never
# skipping one (MySQL's upgrade policy). MariaDB: this release and newer, one major at a time.
MYSQL_SERIES = ((8, 4), (9, 7))
MARIADB_OLDEST = (10, 11)
DEFAULT_IMAGE_REPOSITORY = {Flavor.MYSQL: "mysql", Flavor.MARIADB: "mariadb"}

# The owned and refused my.cnf keys, their folding and their CEL, live in api/mycnf.py.
OPERATOR_OWNED_CONFIG_KEYS = mycnf.OPERATOR_OWNED_KEYS

# Every object derived from a cluster's name must be valid: the StatefulSet's pods carry the label
# controller-revision-hash=<name>-<hash of up to 10 characters>, and a label value has at most 63.
CLUSTER_NAME_MAX_LENGTH = 52
# A DNS-1035 label: Services are named after the cluster and may not start with a digit or hold dots.
CLUSTER_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"

# Label and annotation keys of the operator's own that podTemplate may not set: the role label
# decides Service membership, the selector labels decide which pods are instances.
RESERVED_LABEL_KEYS = (
    c.LABEL_NAME,
    c.LABEL_INSTANCE,
    c.LABEL_COMPONENT,
    c.LABEL_MANAGED_BY,
    c.LABEL_PART_OF,
    c.LABEL_POD_INDEX,
    "statefulset.kubernetes.io/pod-name",
    "controller-revision-hash",
)
# Whole key prefixes the operator (and kopf, its framework) keep for themselves.
RESERVED_KEY_PREFIXES = (f"{c.API_GROUP}/", "kopf.zalando.org/")
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"

SafeText = Annotated[str, StringConstraints(pattern=mycnf.SAFE_TEXT_PATTERN)]
ConfigKey = Annotated[str, StringConstraints(pattern=mycnf.KEY_PATTERN, max_length=mycnf.KEY_MAX_LENGTH)]
ConfigValue = Annotated[
    str, StringConstraints(pattern=mycnf.SAFE_TEXT_PATTERN, max_length=mycnf.VALUE_MAX_LENGTH)
]
LabelKey = Annotated[str, StringConstraints(pattern=LABEL_KEY_PATTERN, max_length=317)]
LabelValue = Annotated[str, StringConstraints(pattern=LABEL_VALUE_PATTERN, max_length=63)]
AnnotationValue = Annotated[str, StringConstraints(max_length=4096)]


def reserved_key(key: str) -> bool:
    """Whether a label or annotation key belongs to the operator (podTemplate may not set it)."""
    return key in RESERVED_LABEL_KEYS or key.startswith(RESERVED_KEY_PREFIXES)


def _cel_reserved(var: str) -> str:
    keys = "[" + ", ".join(f"'{k}'" for k in RESERVED_LABEL_KEYS) + "]"
    prefixes = " || ".join(f"{var}.startsWith('{p}')" for p in RESERVED_KEY_PREFIXES)
    return f"!({var} in {keys} || {prefixes})"


def check_cluster_name(name: str) -> str | None:
    """Why a MysqlCluster name cannot be used (the CRD's metadata.name rule), or None."""
    if len(name) > CLUSTER_NAME_MAX_LENGTH:
        return (
            f"metadata.name: at most {CLUSTER_NAME_MAX_LENGTH} characters (its pods carry the label "
            f"controller-revision-hash=<name>-<hash>, at most 63); {name!r} has {len(name)}"
        )
    if not re.fullmatch(CLUSTER_NAME_PATTERN, name):
        return (
            "metadata.name: must be a DNS-1035 label (lower-case letters, digits and '-', starting "
            f"with a letter), as the Services named after it are; got {name!r}"
        )
    return None


_SERIES_SHOWN = ", ".join(f"{a}.{b}" for a, b in MYSQL_SERIES)
_CEL_MYSQL_SERIES = "[" + ", ".join(f"'{a}.{b}'" for a, b in MYSQL_SERIES) + "]"
_CEL_MYSQL_UPGRADES = (
    "[" + ", ".join(f"'{a[0]}.{a[1]}>{b[0]}.{b[1]}'" for a, b in itertools.pairwise(MYSQL_SERIES)) + "]"
)


def _cel_series(var: str) -> str:
    return f"({var}.version.split('.')[0] + '.' + {var}.version.split('.')[1])"


_QUANTITY_UNITS = {
    "": 1,
    "m": 10**-3,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def quantity_value(quantity: str) -> float:
    """The numeric value of a Kubernetes quantity such as `10Gi` or `500m`."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([a-zA-Z]*)", quantity)
    if not match or match.group(2) not in _QUANTITY_UNITS:
        raise ValueError(f"not a quantity: {quantity!r}")
    return float(match.group(1)) * _QUANTITY_UNITS[match.group(2)]


def fold_config_key(key: str) -> str:
    """mysqld treats `-` and `_` in option names alike."""
    return mycnf.fold_key(key)


class ReplicationMode(StrEnum):
    ASYNC = "async"
    SEMI_SYNC = "semi-sync"


class ServiceType(StrEnum):
    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"


class PvcRetention(StrEnum):
    RETAIN = "Retain"
    DELETE = "Delete"


class Credentials(_Model):
    """Where the passwords come from: an existing Secret, or one the operator generates."""

    secret_name: str | None = Field(
        default=None,
        description="Name of an existing Secret with keys root-password, replication-password, "
        "operator-password (and app-password when application is set). Default: a Secret "
        "<cluster>-credentials generated once by the operator.",
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
    )


class Application(_Model):
    """An application database and a user with all privileges on it, and nothing else."""

    database: str = Field(description="Database to create.", pattern=r"^[A-Za-z0-9_]{1,64}$")
    user: str = Field(description="User to create.", pattern=r"^[A-Za-z0-9_]{1,32}$")


class Storage(_Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0",
                    "storage.size may grow but never shrink",
                    fieldPath=".size",
                ),
                cel(
                    "!has(oldSelf.storageClassName) || (has(self.storageClassName) && "
                    "self.storageClassName == oldSelf.storageClassName)",
                    "storage.storageClassName is immutable",
                    fieldPath=".storageClassName",
                ),
            ]
        }
    )
    size: str = Field(default="10Gi", description="Size of each instance's volume.", pattern=QUANTITY_PATTERN)
    storage_class_name: str | None = Field(
        default=None, description="StorageClass of the volumes; default: the cluster's default class."
    )
    pvc_retention: PvcRetention = Field(
        default=PvcRetention.RETAIN,
        description="What happens to the volumes when the cluster is deleted or scaled down.",
    )


class ResourceList(_Model):
    cpu: str | None = Field(default=None, pattern=QUANTITY_PATTERN)
    memory: str | None = Field(default=None, pattern=QUANTITY_PATTERN)


class Resources(_Model):
    requests: ResourceList = nested(lambda: ResourceList(cpu="250m", memory="512Mi"))
    limits: ResourceList = nested(lambda: ResourceList(memory="1Gi"))


class PodTemplate(_Model):
    """Overrides merged into every instance pod.

    The operator's own label and annotation keys are refused (the role label decides which pods a
    Service sends clients to). `serviceAccountName` is allowed (an image pull Secret may come with
    it) but its token is never mounted: database pods run with automountServiceAccountToken false,
    so a ServiceAccount named here lends the pods none of its API rights.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.labels) || self.labels.all(k, " + _cel_reserved("k") + ")",
                    "podTemplate.labels may not set the operator's own label keys ("
                    + ", ".join((*RESERVED_LABEL_KEYS, *(p + "*" for p in RESERVED_KEY_PREFIXES)))
                    + ")",
                    fieldPath=".labels",
                ),
                cel(
                    "!has(self.annotations) || self.annotations.all(k, " + _cel_reserved("k") + ")",
                    "podTemplate.annotations may not set the operator's own keys ("
                    + ", ".join(p + "*" for p in RESERVED_KEY_PREFIXES)
                    + ")",
                    fieldPath=".annotations",
                ),
            ]
        }
    )

    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=64)
    annotations: dict[LabelKey, AnnotationValue] = Field(default_factory=dict, max_length=64)
    node_selector: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=64)
    tolerations: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra={"items": {"x-kubernetes-preserve-unknown-fields": True}},
    )
    affinity: dict[str, Any] | None = Field(
        default=None,
        description="Replaces the default (preferred anti-affinity across nodes).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    topology_spread_constraints: list[dict[str, Any]] | None = Field(
        default=None,
        description="Replaces the default (spread across zones and nodes, maxSkew 1, ScheduleAnyway); "
        "an empty list: no spread constraints.",
        json_schema_extra={"items": {"x-kubernetes-preserve-unknown-fields": True}},
    )
    priority_class_name: str | None = Field(default=None, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    service_account_name: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="ServiceAccount of the database pods (e.g. for its imagePullSecrets). Its token "
        "is never mounted: the pods run with automountServiceAccountToken false.",
    )

    @field_validator("labels", "annotations")
    @classmethod
    def _no_reserved_keys(cls, value: dict[str, str]) -> dict[str, str]:
        reserved = sorted(k for k in value if reserved_key(k))
        if reserved:
            raise ValueError(f"may not set the operator's own keys: {', '.join(reserved)}")
        return value


class Replication(_Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.mode == oldSelf.mode",
                    "replication.mode cannot be changed on a running cluster",
                    fieldPath=".mode",
                )
            ]
        }
    )
    mode: ReplicationMode = Field(
        default=ReplicationMode.ASYNC,
        description="async, or semi-sync (lossless: AFTER_SYNC, never degrades to async).",
    )
    failover_grace_seconds: int = Field(
        default=10, ge=1, le=3600, description="How long the primary may be unreachable before failover."
    )
    max_lag_seconds: int = Field(
        default=30, ge=1, le=86400, description="A replica lagging more than this is not Ready."
    )
    switchover_to: int | None = Field(
        default=None,
        ge=0,
        le=8,
        description="Ordinal of the instance that should be primary; the operator switches over "
        "without losing writes when it is not.",
    )
    auto_reseed: bool = Field(
        default=False,
        description="Rebuild a replica that cannot replicate (errant transactions, purged binary logs, "
        "diverged data) from a healthy replica: its own data is dropped and replaced by a copy. When "
        "false, such a replica is only reported (Degraded condition and a Warning Event).",
    )
    allow_data_loss_on_failover: bool = Field(
        default=False,
        description="semi-sync: fail over even when a replica that may hold the only copy of acknowledged "
        "writes is unreachable (those writes may be lost). When false, the failover waits for it.",
    )


class Service(_Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.nodePort) || self.type != 'ClusterIP'",
                    "service.nodePort needs service.type NodePort or LoadBalancer",
                    fieldPath=".nodePort",
                )
            ]
        }
    )
    type: ServiceType = Field(default=ServiceType.CLUSTER_IP, description="Type of the -primary Service.")
    node_port: int | None = Field(
        default=None, ge=30000, le=32767, description="Fixed node port of the -primary Service."
    )
    annotations: dict[LabelKey, AnnotationValue] = Field(default_factory=dict, max_length=64)


class Monitoring(_Model):
    """Prometheus metrics of each mysqld through a mysqld_exporter sidecar."""

    exporter: bool = Field(
        default=False,
        description="Run mysqld_exporter beside each mysqld (port 9104, user mysqlop_exporter with "
        "read-only grants; its password is the credentials Secret's exporter-password).",
    )
    exporter_image: str = Field(
        default="prom/mysqld-exporter:v0.18.0",
        pattern=IMAGE_PATTERN,
        max_length=512,
        description="Image of the sidecar, configured by a mounted option file "
        "(--config.my-cnf; v0.14 and later).",
    )


class NetworkPolicySpec(_Model):
    """The NetworkPolicy the operator keeps for each cluster (enforced where the network plugin does)."""

    enabled: bool = Field(default=True, description="Keep a NetworkPolicy for the cluster's pods.")
    clients_from: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=32,
        description="NetworkPolicyPeers (podSelector/namespaceSelector/ipBlock) allowed to reach 3306. "
        "Empty: any client. The cluster's own pods, its backup Jobs and the operator are always allowed.",
        json_schema_extra={"items": {"x-kubernetes-preserve-unknown-fields": True}},
    )
    metrics_from: list[dict[str, Any]] = Field(
        default_factory=lambda: [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ],
        max_length=32,
        description="NetworkPolicyPeers allowed to scrape the exporter port (9104). Default: the "
        "namespace named monitoring.",
        json_schema_extra={"items": {"x-kubernetes-preserve-unknown-fields": True}},
    )


class IssuerRef(_Model):
    """The cert-manager issuer that signs the server certificate."""

    name: str = Field(description="Name of the Issuer or ClusterIssuer.", max_length=253,
                      pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    kind: Literal["Issuer", "ClusterIssuer"] = "Issuer"
    group: str = Field(default="cert-manager.io", max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


class CertManager(_Model):
    """Ask cert-manager for the server certificate: the operator creates a `Certificate` object."""

    issuer_ref: IssuerRef


class Tls(_Model):
    """TLS for clients, replication and CLONE. Default: on, with a CA and server certificate the
    operator issues and rotates per cluster."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!(has(self.secretName) && has(self.certManager))",
                    "tls.secretName and tls.certManager are exclusive: choose one source",
                    fieldPath=".secretName",
                ),
                cel(
                    "self.enabled || !self.requireSecureTransport",
                    "tls.requireSecureTransport needs tls.enabled",
                    fieldPath=".requireSecureTransport",
                ),
            ]
        }
    )
    enabled: bool = Field(default=True, description="Serve TLS and use it for replication and CLONE.")
    secret_name: str | None = Field(
        default=None,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="An existing Secret with ca.crt, tls.crt and tls.key (you rotate it; the operator "
        "reloads mysqld when it changes). Default: the operator issues <cluster>-tls from its own "
        "per-cluster CA <cluster>-ca.",
    )
    cert_manager: CertManager | None = Field(
        default=None, description="Have cert-manager issue <cluster>-tls (a Certificate object)."
    )
    require_secure_transport: bool = Field(
        default=False,
        description="Refuse every client connection that is not TLS (require_secure_transport).",
    )
    additional_names: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="Extra DNS names or IP addresses for the server certificate (e.g. a LoadBalancer's).",
        json_schema_extra={"items": {"type": "string", "maxLength": 253,
                                     "pattern": r"^[A-Za-z0-9*]([-A-Za-z0-9.:*]*[A-Za-z0-9])?$"}},
    )
    duration_days: int = Field(
        default=90, ge=1, le=825, description="Lifetime of the server certificate; it is re-issued "
        "(and mysqld reloaded, without a restart) when less than a third remains."
    )

    @field_validator("additional_names")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        bad = [n for n in value if not re.fullmatch(r"[A-Za-z0-9*]([-A-Za-z0-9.:*]*[A-Za-z0-9])?", n)
               or len(n) > 253]
        if bad:
            raise ValueError(f"tls.additionalNames must be DNS names or IP addresses: {', '.join(bad)}")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Tls:
        if self.secret_name and self.cert_manager is not None:
            raise ValueError("tls.secretName and tls.certManager are exclusive: choose one source")
        if self.require_secure_transport and not self.enabled:
            raise ValueError("tls.requireSecureTransport needs tls.enabled")
        return self


_SPEC_RULES: list[JsonValue] = [
    cel("self.flavor == oldSelf.flavor", "flavor is immutable", fieldPath=".flavor"),
    cel(
        "!has(self.version) || !has(oldSelf.version) || "
        "int(self.version.split('.')[0]) > int(oldSelf.version.split('.')[0]) || "
        "(int(self.version.split('.')[0]) == int(oldSelf.version.split('.')[0]) && "
        "int(self.version.split('.')[1]) >= int(oldSelf.version.split('.')[1]))",
        "version may not go back to an older major version (downgrades are not supported)",
        fieldPath=".version",
    ),
    cel(
        "self.flavor != 'mysql' || !has(self.version) || !has(oldSelf.version) || "
        f"{_cel_series('self')} == {_cel_series('oldSelf')} || "
        f"({_cel_series('oldSelf')} + '>' + {_cel_series('self')}) in {_CEL_MYSQL_UPGRADES}",
        "MySQL upgrades go from one LTS series to the next (" + _SERIES_SHOWN.replace(", ", " -> ") + ")",
        fieldPath=".version",
    ),
    cel(
        f"self.flavor != 'mysql' || !has(self.version) || {_cel_series('self')} in {_CEL_MYSQL_SERIES}",
        f"supported MySQL series: {_SERIES_SHOWN}",
        fieldPath=".version",
    ),
    cel(
        "self.flavor != 'mariadb' || !has(self.version) || "
        f"int(self.version.split('.')[0]) > {MARIADB_OLDEST[0]} || "
        f"(int(self.version.split('.')[0]) == {MARIADB_OLDEST[0]} && "
        f"int(self.version.split('.')[1]) >= {MARIADB_OLDEST[1]})",
        f"supported MariaDB versions: {MARIADB_OLDEST[0]}.{MARIADB_OLDEST[1]} and newer",
        fieldPath=".version",
    ),
    cel(
        "!has(self.replication) || !has(self.replication.switchoverTo) || "
        "self.replication.switchoverTo < self.instances",
        "replication.switchoverTo must name an existing instance (less than instances)",
        fieldPath=".replication.switchoverTo",
    ),
    cel(
        "!has(self.replication) || self.replication.mode != 'semi-sync' || self.instances >= 2",
        "semi-sync replication needs at least 2 instances",
        fieldPath=".replication.mode",
    ),
    cel(
        "has(self.restoreFrom) == has(oldSelf.restoreFrom) && "
        "(!has(self.restoreFrom) || self.restoreFrom == oldSelf.restoreFrom)",
        "restoreFrom is immutable (it is read only when the cluster is created)",
        fieldPath=".restoreFrom",
    ),
    cel(
        "!has(self.mysqlConfig) || self.mysqlConfig.all(k, " + mycnf.cel_key_allowed("k") + ")",
        "mysqlConfig may not set keys the operator owns, nor file, plugin, init, path or grant keys, "
        "in any spelling mysqld accepts (loose-/skip-/disable-/enable-/maximum- prefixes, '-' or '_', "
        "abbreviations): " + ", ".join(mycnf.DENIED_KEYS),
        fieldPath=".mysqlConfig",
    ),
]


class MysqlClusterSpec(_Model):
    """Desired state of a MySQL or MariaDB cluster: one primary and instances-1 replicas."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _SPEC_RULES})

    instances: int = Field(default=3, ge=1, le=9, description="Number of mysqld instances (1 primary).")
    suspend: bool = Field(
        default=False,
        description="Maintenance: while true the operator changes nothing of this cluster (no object "
        "applied, no failover or switchover, no backup); it only observes and reports. Turning it "
        "off resumes from what it observes.",
    )
    flavor: Flavor = Field(
        default=Flavor.MYSQL, description="mysql (8.4 or 9.7 LTS) or mariadb (10.11+). Immutable."
    )
    version: str | None = Field(
        default=None,
        pattern=VERSION_PATTERN,
        max_length=32,
        description="Server version: MySQL 8.4 or 9.7 (LTS; upgrades one LTS series at a time, never "
        "back), MariaDB 10.11+; default 8.4 for mysql, 10.11 for mariadb.",
    )
    image: str | None = Field(
        default=None,
        pattern=IMAGE_PATTERN,
        max_length=512,
        description="Container image; default <flavor>:<version> (the official images).",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    credentials: Credentials = nested(Credentials)
    application: Application | None = Field(
        default=None, description="An application database and user to create."
    )
    storage: Storage = nested(Storage)
    resources: Resources = nested(Resources)
    mysql_config: dict[ConfigKey, ConfigValue] = Field(
        default_factory=dict,
        max_length=mycnf.MAX_KEYS,
        description="Extra my.cnf [mysqld] keys. Keys the operator owns and keys that reach files, "
        "plugins, start-up SQL or grant checks are refused; values are one line each.",
    )
    pod_template: PodTemplate = nested(PodTemplate)
    replication: Replication = nested(Replication)
    service: Service = nested(Service)
    monitoring: Monitoring = nested(Monitoring)
    tls: Tls = nested(Tls)
    network_policy: NetworkPolicySpec = nested(NetworkPolicySpec)
    backup: BackupSchedule | None = Field(
        default=None, description="Scheduled backups, their retention and binlog archiving (PITR)."
    )
    restore_from: RestoreFrom | None = Field(
        default=None,
        description="Create the cluster from a backup (optionally rolled forward to a point in time). "
        "Read only at creation; immutable.",
    )

    @field_validator("mysql_config")
    @classmethod
    def _no_refused_keys(cls, value: dict[str, str]) -> dict[str, str]:
        refused = [reason for reason in (mycnf.refusal(k) for k in sorted(value)) if reason]
        if refused:
            raise ValueError(
                "mysqlConfig may not set keys the operator owns or refuses: " + "; ".join(refused)
            )
        return value

    @model_validator(mode="after")
    def _cross_field_rules(self) -> MysqlClusterSpec:
        target = self.replication.switchover_to
        if target is not None and target >= self.instances:
            raise ValueError(
                "replication.switchoverTo must name an existing instance "
                f"(less than instances={self.instances})"
            )
        if self.replication.mode == ReplicationMode.SEMI_SYNC and self.instances < 2:
            raise ValueError("semi-sync replication needs at least 2 instances")
        if self.service.node_port is not None and self.service.type == ServiceType.CLUSTER_IP:
            raise ValueError("service.nodePort needs service.type NodePort or LoadBalancer")
        unsupported = check_supported_version(self.flavor, server_version(self))
        if unsupported:
            raise ValueError(unsupported)
        return self

    @property
    def effective_version(self) -> str:
        return self.version or DEFAULT_VERSION[self.flavor]

    @property
    def effective_image(self) -> str:
        return self.image or f"{DEFAULT_IMAGE_REPOSITORY[self.flavor]}:{self.effective_version}"


def server_version(spec: MysqlClusterSpec) -> tuple[int, ...]:
    """The server version the spec runs: the image tag when it is a version, else `version`."""
    tag = ""
    if spec.image:
        last = spec.image.rsplit("/", 1)[-1].split("@", 1)[0]
        tag = last.rsplit(":", 1)[1] if ":" in last else ""
    for text in (tag, spec.effective_version):
        match = re.match(r"^([0-9]+)\.([0-9]+)(?:\.([0-9]+))?", text)
        if match:
            return tuple(int(part) for part in match.groups() if part is not None)
    return ()


def check_supported_version(flavor: Flavor, version: tuple[int, ...]) -> str | None:
    """Why a server version is not supported, or None (MySQL: an LTS series we run; MariaDB: 10.11+)."""
    if len(version) < 2:
        return None  # a tag that names no version (e.g. latest): the default version applies
    shown = ".".join(str(p) for p in version[:2])
    if flavor == Flavor.MYSQL and version[:2] not in MYSQL_SERIES:
        return f"MySQL {shown} is not supported (supported LTS series: {_SERIES_SHOWN})"
    if flavor == Flavor.MARIADB and version[:2] < MARIADB_OLDEST:
        return f"MariaDB {shown} is not supported (supported: {MARIADB_OLDEST[0]}.{MARIADB_OLDEST[1]}+)"
    return None


def check_version_change(flavor: Flavor, old: tuple[int, ...], new: tuple[int, ...]) -> str | None:
    """Why a version change is refused, or None when it is a supported upgrade (or no change)."""
    if len(old) < 2 or len(new) < 2 or old[:2] == new[:2]:
        return None
    shown = ".".join(str(p) for p in old[:2]), ".".join(str(p) for p in new[:2])
    if new[:2] < old[:2]:
        return f"downgrade from {shown[0]} to {shown[1]} is not supported (a major version never goes back)"
    if flavor == Flavor.MYSQL:
        series: list[tuple[int, ...]] = list(MYSQL_SERIES)
        if new[:2] not in series or old[:2] not in series:
            return f"MySQL {shown[1]} is not supported (supported LTS series: {_SERIES_SHOWN})"
        if series.index(new[:2]) - series.index(old[:2]) != 1:
            return (
                f"upgrade from {shown[0]} to {shown[1]} skips an LTS series; upgrade one LTS series at a time"
            )
    elif new[0] - old[0] > 1:
        return f"upgrade from {shown[0]} to {shown[1]} skips a major version; upgrade one major at a time"
    return None


def check_update(old: MysqlClusterSpec, new: MysqlClusterSpec) -> list[str]:
    """Transition rules (the CEL `oldSelf` rules): what an update may not change. Empty when allowed."""
    problems = []
    if old.flavor != new.flavor:
        problems.append("flavor is immutable")
    else:
        refused = check_version_change(new.flavor, server_version(old), server_version(new))
        if refused:
            problems.append(f"version change refused: {refused}")
    if quantity_value(new.storage.size) < quantity_value(old.storage.size):
        problems.append("storage.size may grow but never shrink")
    if old.storage.storage_class_name is not None and new.storage.storage_class_name != (
        old.storage.storage_class_name
    ):
        problems.append("storage.storageClassName is immutable")
    if old.replication.mode != new.replication.mode:
        problems.append("replication.mode cannot be changed on a running cluster")
    if old.restore_from != new.restore_from:
        problems.append("restoreFrom is immutable (it is read only when the cluster is created)")
    return problems


# ----------------------------------------------------------------------------------------- status


class Phase(StrEnum):
    PENDING = "Pending"
    CREATING = "Creating"
    INITIALIZING = "Initializing"
    READY = "Ready"
    DEGRADED = "Degraded"
    FAILING_OVER = "FailingOver"
    INVALID = "Invalid"
    RESTORING = "Restoring"
    RESTORE_FAILED = "RestoreFailed"
    SUSPENDED = "Suspended"


class Condition(_Model):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: str
    observed_generation: int | None = None


class InstanceStatus(_Model):
    name: str
    role: str = "none"
    ready: bool = False
    reachable: bool = False
    gtid: str | None = None
    lag_seconds: float | None = None
    message: str | None = None


class RoleChange(_Model):
    """One failover or switchover, kept in a short history."""

    time: str
    kind: Literal["failover", "switchover"]
    from_instance: str | None = Field(default=None, alias="from")
    to_instance: str = Field(alias="to")
    reason: str
    seconds: float


class MysqlClusterStatus(_Model):
    model_config = ConfigDict(extra="allow")

    phase: Phase = Phase.PENDING
    conditions: list[Condition] = Field(default_factory=list)
    primary: str | None = None
    ready_instances: int = 0
    instances_ready: str = Field(default="0/0", description="ready/desired, for kubectl get")
    version: str | None = None
    observed_generation: int | None = None
    credentials_secret: str | None = None
    instances: list[InstanceStatus] = Field(default_factory=list)
    role_changes: list[RoleChange] = Field(default_factory=list)
