"""Operator settings, one typed object, from the command line or the environment."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_JOB_IMAGE = "mysql-operator:latest"


@dataclass(frozen=True)
class OperatorSettings:
    namespaces: list[str] = field(default_factory=list)  # empty with all_namespaces: cluster-wide
    all_namespaces: bool = True
    log_level: str = "INFO"
    peering_name: str | None = "mysql-operator"
    standalone: bool = False
    # kopf peering pauses EVERY operator when peers share a priority; a random one per process makes
    # exactly one replica (the highest) active and the others wait as standbys.
    priority: int | None = None
    liveness_endpoint: str | None = None
    topology_interval_seconds: float = 3.0
    metrics_address: str | None = None  # host:port; None: no /metrics
    log_format: str = "plain"  # plain | json
    job_image: str = DEFAULT_JOB_IMAGE  # the backup, binlog, retention and restore Jobs run this image
