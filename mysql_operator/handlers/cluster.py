"""kopf handlers for MysqlCluster: thin glue between kopf, the builders and the status computation."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import kopf

from mysql_operator import conventions as c
from mysql_operator import metrics
from mysql_operator.api.models import check_cluster_name
from mysql_operator.handlers import events, suspend
from mysql_operator.handlers.objects import (
    InvalidSpec,
    accepted_spec,
    apply_objects,
    dry_run_objects,
    encode_accepted_spec,
    ensure_credentials,
    parse_spec,
    primary_ordinal,
    ready_instances,
)
from mysql_operator.handlers.restore import restore_cap
from mysql_operator.handlers.watch import SECRETS, ClusterKey
from mysql_operator.kube import Kube, KubeError, load_config
from mysql_operator.resources.meta import ClusterRef
from mysql_operator.status import (
    CREDENTIALS_READY,
    RESOURCES_READY,
    VALID,
    Observed,
    now_iso,
    observed_conditions,
    set_condition,
    status_fields,
)
from mysql_operator.tls.ensure import ensure_tls
from mysql_operator.tls.manifests import server_secret_name

CR = (c.API_GROUP, c.API_VERSION, c.PLURAL)
RETRY_SECONDS = 10
# API answers that the same request will always get: 400 Bad Request, 422 Invalid.
PERMANENT_API_STATUSES = (400, 422)
CREDENTIALS_RETRY_SECONDS = 10


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Keep kopf's bookkeeping in annotations (status is ours), and make one API client."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=c.API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=c.API_GROUP, key="last-handled-configuration"
    )
    # Events are what the handlers post on purpose (events.info, kopf.warn) and warnings; kopf's own
    # "handler succeeded" lines would cost an API request each, per cluster, on every change.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    # A watch stream that goes silent (no event, no bookmark) is reconnected after this long; kopf's
    # 70 s default left spec changes and new objects unseen for over a minute when one died (seen
    # in CI after operator restarts: maintenance off, a new MysqlDatabase). Timers never wait on it.
    settings.watching.inactivity_timeout = 20
    settings.execution.max_workers = 16
    # A standby replica takes over this long after the leader vanished without saying goodbye.
    settings.peering.lifetime = 20
    memo.kube = Kube(load_config())


def _ref(meta: kopf.Meta, namespace: str | None) -> ClusterRef:
    return ClusterRef(name=str(meta["name"]), namespace=str(namespace), uid=str(meta["uid"]))


def _conditions(status: kopf.Status) -> list[dict[str, Any]]:
    return [dict(cond) for cond in (status.get("conditions") or [])]


@kopf.on.resume(*CR)
@kopf.on.create(*CR)
@kopf.on.update(*CR, field="spec")  # type: ignore[arg-type]
def reconcile(
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    namespace: str | None,
    patch: kopf.Patch,
    old: Any,
    memo: kopf.Memo,
    logger: logging.Logger,
    pods_by_cluster: kopf.Index[ClusterKey, dict[str, Any]],
    statefulsets_by_name: kopf.Index[ClusterKey, dict[str, Any]],
    **_: Any,
) -> None:
    """Bring the owned objects in line with the spec and report what was done in status and Events.
    Pods and the StatefulSet come from the watch indices (handlers/watch.py), not from requests."""
    kube: Kube = memo.kube
    ref = _ref(meta, namespace)
    pods = list(pods_by_cluster.get((ref.namespace, ref.name), []))
    key = (ref.namespace, c.statefulset_name(ref.name))
    statefulsets: Iterable[dict[str, Any]] = statefulsets_by_name.get(key, [])
    statefulset = next(iter(statefulsets), None)
    metrics.RECONCILES.labels(ref.namespace, ref.name).inc()
    generation = meta.get("generation")
    now = now_iso()
    suspended = suspend.is_suspended(spec)
    conditions = suspend.suspended_conditions(_conditions(status), suspended, generation, now)
    metrics.SUSPENDED.labels(ref.namespace, ref.name).set(int(suspended))
    if suspended:  # report it and change nothing (handlers/suspend.py)
        patch.status.update({"conditions": conditions, "phase": suspend.PHASE_SUSPENDED})
        return
    # What the transition rules compare against: the spec last accepted and acted on (kept in status,
    # so a refused update in between or an operator restart does not move the baseline), else kopf's
    # old value (registered with field="spec", `old` is the old spec itself).
    accepted = accepted_spec(status)
    old_spec = accepted if accepted else (dict(old) if isinstance(old, Mapping) and old else None)
    try:
        name_problem = check_cluster_name(ref.name)
        if name_problem:
            raise InvalidSpec(name_problem)
        cluster_spec = parse_spec(dict(spec), old_spec)
    except InvalidSpec as error:
        # A spec the schema let through but we cannot act on: say so, change nothing, do not retry.
        message = str(error)
        logger.warning("invalid spec: %s", message)
        kopf.warn(body, reason="InvalidSpec", message=message)
        conditions = set_condition(conditions, VALID, False, "InvalidSpec", message, generation, now)
        patch.status["conditions"] = conditions
        patch.status["phase"] = "Invalid"
        patch.status["observedGeneration"] = generation
        return
    conditions = set_condition(conditions, VALID, True, "SpecValid", "spec accepted", generation, now)
    try:
        dry_run_objects(kube, ref, cluster_spec, pods)
        credentials = ensure_credentials(kube, ref, cluster_spec)
        # The topology loop reads the Secret once and keeps it: this handler may just have changed it.
        SECRETS.forget(ref.namespace, credentials.secret)
        was_invalid = any(
            cond.get("type") == CREDENTIALS_READY and cond.get("status") == "False" for cond in conditions
        )
        if credentials.created:
            events.info(body, reason="CredentialsGenerated", message=f"generated Secret {credentials.secret}")
        conditions = set_condition(
            conditions,
            CREDENTIALS_READY,
            credentials.ok,
            "CredentialsFound" if credentials.ok else "CredentialsInvalid",
            credentials.message,
            generation,
            now,
        )
        if not credentials.ok:
            if not was_invalid:
                kopf.warn(body, reason="CredentialsInvalid", message=credentials.message)
            patch.status["conditions"] = conditions
            patch.status["phase"] = "Pending"
            patch.status["observedGeneration"] = generation
            # Nothing else is created; look again soon, so fixing the Secret is enough.
            raise kopf.TemporaryError(credentials.message, delay=CREDENTIALS_RETRY_SECONDS)
        else:
            tls = ensure_tls(kube, ref, cluster_spec, datetime.now(UTC))
            if tls.issued:
                # The topology loop keeps the server Secret cached (watch.SECRETS): read it anew.
                SECRETS.forget(ref.namespace, server_secret_name(cluster_spec, ref.name) or "")
                events.info(body, reason="CertificateIssued", message=tls.message)
            elif not tls.ok:
                kopf.warn(body, reason="TlsNotReady", message=tls.message)
            cap = restore_cap(cluster_spec, status, primary_ordinal(pods))
            applied = apply_objects(kube, ref, cluster_spec, pods, logger, credentials.data, cap)
            events.info(body, reason="Applied",
                        message=f"applied {len(applied)} objects: {', '.join(applied)}")
            conditions = set_condition(
                conditions, RESOURCES_READY, True, "Applied", "owned objects applied", generation, now
            )
        ready = ready_instances(statefulset)
    except KubeError as error:
        metrics.RECONCILE_ERRORS.labels(ref.namespace, ref.name).inc()
        if error.status not in PERMANENT_API_STATUSES:
            raise kopf.TemporaryError(str(error), delay=RETRY_SECONDS) from None
        # The API refuses what this spec builds: retrying the same spec cannot help, a new spec can
        # (an update handler runs again then). Say what to change, once, and stop.
        message = f"the API server refused an object built from this cluster: {error}; change the spec"
        logger.warning("%s", message)
        kopf.warn(body, reason="ObjectRefused", message=message)
        conditions = set_condition(
            conditions, RESOURCES_READY, False, "ObjectRefused", message, generation, now
        )
        patch.status["conditions"] = conditions
        patch.status["phase"] = "Invalid"
        patch.status["observedGeneration"] = generation
        return
    # Accepted only once the API took what it builds: a refused spec never becomes the baseline.
    patch.status["acceptedSpec"] = encode_accepted_spec(cluster_spec)
    patch.status["credentialsSecret"] = credentials.secret
    patch.status["observedGeneration"] = generation
    if status.get("topology"):
        # The topology loop owns Ready, primary and phase once it has observed the instances.
        patch.status["conditions"] = conditions
        return
    observed = Observed(ready_instances=ready, primary=status.get("primary"))
    conditions = observed_conditions(cluster_spec, conditions, observed, generation, now)
    patch.status.update(status_fields(cluster_spec, conditions, observed, generation))


@kopf.on.delete(*CR, optional=True)  # type: ignore[arg-type]
def deleted(meta: kopf.Meta, spec: kopf.Spec, logger: logging.Logger, **_: Any) -> None:
    """Owned objects go by garbage collection; volumes stay or go per spec.storage.pvcRetention."""
    retention = (spec.get("storage") or {}).get("pvcRetention", "Retain")
    logger.info(
        "MysqlCluster %s deleted; owned objects are garbage-collected, volumes: %s", meta["name"], retention
    )
