"""The topology loop: observe the instances over SQL, take the next step, report.

One kopf daemon per cluster runs a pass whenever a watched change wakes it (handlers/watch.py: a pod's
container stopped or failed its probe, the cluster's spec was accepted) and otherwise when
topology.pacing says (every PROBE_INTERVAL, every GRACE_PROBE while the primary is within its grace,
exactly at the end of the grace). Observe (pods and StatefulSet from the watch indices, instances over
SQL) -> decide (topology.decide, pure) -> act (SQL, role labels) -> status (patched only where it
changed) and Events. SQL runs in a pool of its own; a pass never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import logging
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf

from mysql_operator import conventions as c
from mysql_operator import logcontext, metrics
from mysql_operator.api.models import MysqlClusterSpec
from mysql_operator.handlers import day2, events
from mysql_operator.handlers.objects import InvalidSpec, encode_accepted_spec, parse_spec
from mysql_operator.handlers.restore import restore_finished
from mysql_operator.handlers.suspend import fenced_pods, observe_suspended, without_fenced
from mysql_operator.handlers.watch import NODES, SECRETS, WAKES, ClusterKey
from mysql_operator.kube import Kube, KubeError
from mysql_operator.mysql.dialect import dialect_for
from mysql_operator.mysql.sentinel import SENTINEL
from mysql_operator.mysql.session import (
    READ_ONLY_REFUSAL,
    Login,
    MysqlError,
    SqlError,
    Timeouts,
    open_session,
)
from mysql_operator.mysql.users import ClusterCredentials, ensure_exporter_user
from mysql_operator.resources.meta import ClusterRef
from mysql_operator.resources.statefulset import credentials_secret
from mysql_operator.status import (
    DEGRADED,
    READY,
    REPLICATING,
    RESOURCES_READY,
    VALID,
    condition_is,
    now_iso,
    set_condition,
)
from mysql_operator.tls.ensure import (
    client_tls,
    ensure_replication_tls,
    ensure_tls,
    reload_if_stale,
    serves_current,
)
from mysql_operator.tls.manifests import pod_mounts_tls, server_secret_name
from mysql_operator.topology.drain import drain_switchover_target, placements, primary_node
from mysql_operator.topology.pacing import PROBE_INTERVAL, next_pass_in
from mysql_operator.topology.reconcile import (
    InstanceEndpoint,
    TopologyMemory,
    TopologyResult,
    TopologySettings,
    TransitionRecord,
    reconcile_topology,
)
from mysql_operator.topology.seeding import SeedWorkers

CR = (c.API_GROUP, c.API_VERSION, c.PLURAL)
HISTORY_LENGTH = 10
log = logging.getLogger(__name__)


def pod_endpoint(
    pod: Mapping[str, Any], instances: int, tls_secret: Mapping[str, str] | None = None
) -> InstanceEndpoint | None:
    """An instance the operator can talk to: a pod of a wanted ordinal that has an IP. A terminating
    pod is one too while its mysqld answers: it must be observed (and fenced, or switched over from)
    rather than ignored while it still takes writes.

    Over TLS (verified: the cluster's CA, the pod's DNS name) when the pod was started with the
    certificate mounted; a pod from before TLS was turned on is still reached as it serves."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    if not status.get("podIP"):
        return None
    ordinal = c.ordinal_of_pod(meta["name"])
    if ordinal >= instances:
        return None
    tls = None
    if tls_secret and pod_mounts_tls(pod):
        cluster = (meta.get("labels") or {}).get(c.LABEL_INSTANCE) or meta["name"].rsplit("-", 1)[0]
        tls = client_tls(tls_secret, cluster, str(meta.get("namespace")), ordinal)
    return InstanceEndpoint(ordinal=ordinal, pod_name=meta["name"], host=status["podIP"], tls=tls,
                            terminating=bool(meta.get("deletionTimestamp")))


def desired_role_labels(result: TopologyResult) -> dict[str, str]:
    """pod -> role label: the Services send writes to the primary and reads to healthy replicas only.

    The primary keeps its label while it is within the grace period (one missed probe must not
    cut writes); a pod fenced at the Kubernetes level never carries it."""
    labels = {}
    for inst in result.instances:
        if inst.ordinal == result.primary and inst.ordinal not in result.pods_fenced:
            labels[inst.pod_name] = c.Role.PRIMARY.value
        elif inst.role == c.Role.REPLICA and inst.ready:
            labels[inst.pod_name] = c.Role.REPLICA.value
        else:
            labels[inst.pod_name] = c.Role.NONE.value
    return labels


def role_label_changes(
    current: Mapping[str, str | None], wanted: Mapping[str, str]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(demotions, promotions) to make the labels `wanted`. Every pod labelled primary that is not
    the wanted primary (terminating pods and pods outside `wanted` included) is demoted; the caller
    applies the promotions only when every demotion succeeded, so two pods never carry role=primary."""
    primary = c.Role.PRIMARY.value
    demotions = [(pod, wanted.get(pod, c.Role.NONE.value)) for pod, role in sorted(current.items())
                 if role == primary and wanted.get(pod) != primary]
    demotions += [(pod, role) for pod, role in sorted(wanted.items())
                  if role != primary and current.get(pod) != role and (pod, role) not in demotions]
    promotions = [(pod, role) for pod, role in sorted(wanted.items())
                  if role == primary and current.get(pod) != role]
    return demotions, promotions[:1] if len(promotions) == 1 else []


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def history_entry(record: TransitionRecord, pod_names: Mapping[int, str], cluster: str) -> dict[str, Any]:
    def name(ordinal: int | None) -> str | None:
        return None if ordinal is None else pod_names.get(ordinal, c.pod_name(cluster, ordinal))

    return {
        "time": _iso(record.at),
        "kind": record.kind,
        "from": name(record.from_ordinal),
        "to": name(record.to_ordinal),
        "reason": record.reason,
        "seconds": round(record.seconds, 3),
    }


def _instance_status(inst: Any) -> dict[str, Any]:
    """One entry of status.instances; absent rather than null (a merge patch drops nulls)."""
    entry = {
        "name": inst.pod_name,
        "role": inst.role.value,
        "ready": inst.ready,
        "reachable": inst.reachable,
        "gtid": inst.gtid or None,
        "lagSeconds": inst.lag_seconds,
        "message": inst.message or None,
    }
    return {key: value for key, value in entry.items() if value is not None}


def topology_status(
    spec: MysqlClusterSpec,
    cluster: str,
    result: TopologyResult,
    conditions: list[dict[str, Any]],
    history: list[dict[str, Any]],
    generation: int | None,
    now: str,
    previous_phase: str | None = None,
) -> dict[str, Any]:
    """The status fields a topology pass writes (pure)."""
    pod_names = {inst.ordinal: inst.pod_name for inst in result.instances}
    facts = {fact.type: fact for fact in result.conditions}
    for type_ in (REPLICATING, DEGRADED):
        fact = facts[type_]
        conditions = set_condition(conditions, type_, fact.status, fact.reason, fact.message, generation, now)
    staying = [inst for inst in result.instances if inst.ordinal < spec.instances]
    ready_count = sum(1 for inst in staying if inst.ready)
    ready_fact = facts[READY]
    all_present = len(staying) == spec.instances
    applied = condition_is(conditions, RESOURCES_READY)
    ready = ready_fact.status and all_present and applied
    if ready or not ready_fact.status:
        reason, message = ready_fact.reason, ready_fact.message
    elif not all_present:
        reason, message = "InstancesMissing", f"{len(staying)}/{spec.instances} instances running"
    else:
        reason, message = "ResourcesNotApplied", "owned objects not applied yet"
    conditions = set_condition(conditions, READY, ready, reason, message, generation, now)
    if result.transition is not None:
        history = [*history, history_entry(result.transition, pod_names, cluster)][-HISTORY_LENGTH:]
    # Until the cluster has been Ready once, being short of Ready is still starting up.
    been_ready = previous_phase in ("Ready", "Degraded", "FailingOver")
    if condition_is(conditions, VALID, "False"):
        phase = "Invalid"  # the reconcile handler refused the spec: say so until it is fixed
    elif ready:
        phase = "Ready"
    elif not been_ready:
        phase = "Initializing"
    elif result.primary is None:
        phase = "FailingOver"
    else:
        phase = "Degraded"
    return {
        "phase": phase,
        "conditions": conditions,
        "primary": pod_names.get(result.primary) if result.primary is not None else None,
        "readyInstances": ready_count,
        "instancesReady": f"{ready_count}/{spec.instances}",
        "instances": [_instance_status(inst) for inst in result.instances],
        "roleChanges": history,
        "topology": {**result.memory.to_dict(), "state": result.state.value},
    }


# Per cluster uid: the (pod, host, data generation) whose exporter user is known to exist.
_EXPORTER_USERS: dict[str, set[tuple[str, str, int]]] = {}


def ensure_exporter_users(
    uid: str,
    endpoints: list[InstanceEndpoint],
    result: TopologyResult,
    secret_data: Mapping[str, str],
    spec: MysqlClusterSpec,
    logger: logging.Logger,
    seeds: SeedWorkers,
) -> None:
    """Create the mysqld_exporter user on every reachable instance once per data generation (unlogged,
    read-only grants). A seed replaces an instance's data, users included, and a donor copied while
    its user was being created may lack it: an instance being seeded is left alone, and once seeded
    it is a new generation whose user is created again."""
    password = secret_data.get(c.KEY_EXPORTER_PASSWORD)
    if not password:
        return
    done = _EXPORTER_USERS.setdefault(uid, set())
    seeding = seeds.running()
    reachable = {inst.ordinal for inst in result.instances if inst.reachable} - set(seeding)
    generations = seeds.data_generations()
    admin = Login(c.OPERATOR_USER, secret_data.get(c.KEY_OPERATOR_PASSWORD, ""))
    for endpoint in endpoints:
        key = (endpoint.pod_name, endpoint.host, generations.get(endpoint.ordinal, 0))
        if key in done or endpoint.ordinal not in reachable:
            continue
        try:
            with open_session(endpoint.host, Login(c.EXPORTER_USER, password), port=endpoint.port,
                              secrets=(password,), tls=endpoint.tls):
                done.add(key)  # there already, with this password (replicated, or a clone's copy)
                continue
        except MysqlError:
            pass
        try:
            with open_session(endpoint.host, admin, port=endpoint.port, secrets=(password, admin.password),
                              tls=endpoint.tls) as session:
                ensure_exporter_user(session, dialect_for(spec.flavor), password)
            done.add(key)
            logger.info("exporter user ready on %s", endpoint.pod_name)
        except SqlError as error:
            primary = next((e for e in endpoints if e.ordinal == result.primary), None)
            if error.code != READ_ONLY_REFUSAL or primary is None or primary is endpoint:
                logger.warning("exporter user on %s: %s", endpoint.pod_name, error)
                continue
            # A MySQL replica under super_read_only (seeded before the user existed on its donor):
            # made logged on the primary, it arrives by replication; the next pass finds it there.
            try:
                with open_session(primary.host, admin, port=primary.port,
                                  secrets=(password, admin.password), tls=primary.tls) as session:
                    ensure_exporter_user(session, dialect_for(spec.flavor), password, logged=True)
                logger.info("exporter user made on the primary %s for %s", primary.pod_name,
                            endpoint.pod_name)
            except MysqlError as again:
                logger.warning("exporter user on the primary %s: %s", primary.pod_name, again)
        except MysqlError as error:
            logger.warning("exporter user on %s: %s", endpoint.pod_name, error)


# Per cluster uid: when the certificates were last checked (monotonic seconds). A check reads the CA
# and server Secrets (three requests): every 5 minutes keeps an idle cluster under one request a
# minute. Renewal is due a third of a lifetime before expiry (days), and a spec change re-issues at
# once (the reconcile handler); only a certificate rotated outside the operator waits this long.
_TLS_CHECKED: dict[str, float] = {}
TLS_CHECK_SECONDS = 300.0


def _tls_pass(
    kube: Kube, body: kopf.Body, spec: MysqlClusterSpec, meta: Mapping[str, Any], namespace: str,
    logger: logging.Logger,
) -> dict[str, str]:
    """Re-issue certificates that are due (checked every TLS_CHECK_SECONDS per cluster), then the
    Secret's data.

    The server Secret is read through the shared cache (watch.SECRETS) and read again on each
    certificate check, so a pass (every 0.25 s within a grace) sends no request for it, and a
    certificate rotated outside the operator (its own Secret, cert-manager) is seen at the next check."""
    if not spec.tls.enabled:
        return {}
    uid, now = str(meta.get("uid")), time.monotonic()
    cluster = str(meta["name"])
    secret_name = server_secret_name(spec, cluster)
    if not secret_name:
        return {}
    if now - _TLS_CHECKED.get(uid, -TLS_CHECK_SECONDS) >= TLS_CHECK_SECONDS:
        ref = ClusterRef(name=cluster, namespace=namespace, uid=uid)
        try:
            outcome = ensure_tls(kube, ref, spec, datetime.now(UTC))
            _TLS_CHECKED[uid] = now
            SECRETS.forget(namespace, secret_name)
        except KubeError as error:
            logger.warning("TLS certificates not checked: %s", error)
        else:
            if outcome.issued:
                events.info(body, reason="CertificateIssued", message=outcome.message)
            elif not outcome.ok:
                kopf.warn(body, reason="TlsNotReady", message=outcome.message)
    try:
        return SECRETS.get(kube, namespace, secret_name) or {}
    except KubeError as error:
        logger.warning("TLS Secret not read: %s", error)
        return {}


# Per (cluster uid, pod): the certificate last checked and when (monotonic seconds).
_TLS_CHECKED_PODS: dict[tuple[str, str], tuple[str, float]] = {}
TLS_POD_CHECK_SECONDS = 15.0


def tls_per_instance(
    uid: str,
    endpoints: list[InstanceEndpoint],
    result: TopologyResult,
    secret_data: Mapping[str, str],
    spec: MysqlClusterSpec,
    cert_pem: str,
    body: kopf.Body,
    logger: logging.Logger,
) -> None:
    """Per reachable instance, every 15 s (or at once when the Secret's certificate changed): make a
    replica's link to its source follow spec.tls, and make mysqld serve the Secret's certificate (a
    live reload, no restart; kubelet may not have refreshed the mounted files yet: tried again)."""
    reachable = {inst.ordinal for inst in result.instances if inst.reachable}
    admin = Login(c.OPERATOR_USER, secret_data.get(c.KEY_OPERATOR_PASSWORD, ""))  # root is local only
    dialect = dialect_for(spec.flavor)
    now = time.monotonic()
    tls_hosts = {e.host for e in endpoints if e.tls is not None}
    for endpoint in endpoints:
        key = (uid, endpoint.pod_name)
        if endpoint.ordinal not in reachable:
            continue
        last_cert, last_time = _TLS_CHECKED_PODS.get(key, ("", -TLS_POD_CHECK_SECONDS))
        if last_cert == cert_pem and now - last_time < TLS_POD_CHECK_SECONDS:
            continue
        _TLS_CHECKED_PODS[key] = (cert_pem, now)
        reloaded, current, changed = False, True, None
        try:
            with open_session(endpoint.host, admin, port=endpoint.port, tls=endpoint.tls,
                              secrets=(admin.password,)) as session:
                changed = ensure_replication_tls(session, dialect, endpoint.tls is not None, tls_hosts)
                if endpoint.tls is not None and cert_pem:
                    reloaded = reload_if_stale(session, dialect, cert_pem)
            if reloaded:
                with open_session(endpoint.host, admin, port=endpoint.port, tls=endpoint.tls,
                                  secrets=(admin.password,)) as session:
                    current = serves_current(session, dialect, cert_pem)
        except MysqlError as error:
            logger.warning("TLS on %s: %s", endpoint.pod_name, error)
            continue
        if changed:
            events.info(body, reason="ReplicationTlsChanged", message=f"{endpoint.pod_name}: {changed}")
        if reloaded and current:
            logger.info("TLS reloaded on %s", endpoint.pod_name)
            events.info(body, reason="TlsReloaded",
                        message=f"{endpoint.pod_name} serves the current certificate (reloaded, no restart)")
        elif reloaded:
            logger.info("TLS reload on %s: its mounted files still hold the previous certificate "
                        "(kubelet refreshes them); trying again", endpoint.pod_name)


def spec_accepted(status: Mapping[str, Any], spec: MysqlClusterSpec) -> bool:
    """Whether the reconcile handler accepted exactly this spec (a refused change, such as a
    downgrade, must not scale or roll anything). Only that handler writes status.acceptedSpec, so
    no concurrent status write of this timer can make an accepted spec look refused."""
    return status.get("acceptedSpec") == encode_accepted_spec(spec)


def record_metrics(namespace: str, cluster: str, result: TopologyResult) -> None:
    metrics.TOPOLOGY_PASSES.labels(namespace, cluster).inc()
    ready = sum(1 for inst in result.instances if inst.ready)
    metrics.READY_INSTANCES.labels(namespace, cluster).set(ready)
    ready_fact = next((f for f in result.conditions if f.type == READY), None)
    metrics.CLUSTER_READY.labels(namespace, cluster).set(1 if ready_fact and ready_fact.status else 0)
    for inst in result.instances:
        metrics.INSTANCE_UP.labels(namespace, cluster, inst.pod_name).set(1 if inst.reachable else 0)
        metrics.PRIMARY.labels(namespace, cluster, inst.pod_name).set(int(inst.ordinal == result.primary))
        lag = metrics.REPLICATION_LAG
        if inst.ordinal != result.primary and inst.lag_seconds is not None:
            lag.labels(namespace, cluster, inst.pod_name).set(inst.lag_seconds)
        else:
            # A primary (or an instance not replicating) has no lag: drop the series, not keep a stale one.
            with contextlib.suppress(KeyError):
                lag.remove(namespace, cluster, inst.pod_name)
    if result.transition is not None:
        counter = metrics.FAILOVERS if result.transition.kind == "failover" else metrics.SWITCHOVERS
        counter.labels(namespace, cluster).inc()
        metrics.FAILOVER_SECONDS.labels(namespace, cluster).set(result.transition.seconds)


def drain_switchover(kube: Kube, pods: list[dict[str, Any]], logger: logging.Logger) -> int | None:
    """The replica to switch over to when the primary's node is cordoned (topology/drain.py). The
    node is read through a cache shared by every cluster (watch.NODES), not once per pass."""
    node = primary_node(pods)
    try:
        cordoned = {node} if node is not None and NODES.cordoned(kube, node) else set()
    except KubeError as error:
        logger.warning("could not read node %s: %s", node, error)
        return None
    return drain_switchover_target(placements(pods, cordoned))


# One pass of a cluster at a time runs in this pool (its loop waits for it), so a cluster whose
# instances hang on connect holds one worker for a bounded time and never queues another's pass.
TOPOLOGY_WORKERS = 64
_POOL = ThreadPoolExecutor(max_workers=TOPOLOGY_WORKERS, thread_name_prefix="topology")
ERROR_DELAY = 5.0  # seconds before the next pass after the API server refused a request
# Per cluster uid: the memory the last pass wrote (the live body's status may lag behind our own
# write by a watch event; a pass must not start a grace period again from a stale copy).
_MEMORY: dict[str, TopologyMemory] = {}
# Per cluster uid: (resourceVersion when written, status fields written), to skip re-writing what
# the watch stream has not brought back yet.
_WRITTEN: dict[str, tuple[str | None, dict[str, Any]]] = {}


@dataclass(frozen=True)
class PassInput:
    """What a pass reads, taken on the event loop from the live body and the watch indices."""

    body: kopf.Body
    namespace: str
    name: str
    uid: str
    spec: dict[str, Any]
    meta: dict[str, Any]
    status: dict[str, Any]
    pods: list[dict[str, Any]]
    statefulset: dict[str, Any] | None


class OtherIncarnation(Exception):
    """The name of the loop's cluster holds another cluster now (deleted and created again), or none:
    the pass stops where it is (before a promotion, at its checkpoint) and writes nothing."""

    def __init__(self, work: PassInput) -> None:
        super().__init__(f"{work.namespace}/{work.name} is no longer the cluster with uid {work.uid}")


@kopf.daemon(*CR, initial_delay=0.5, cancellation_timeout=5.0)  # type: ignore[arg-type]
async def topology(
    body: kopf.Body,
    meta: kopf.Meta,
    namespace: str | None,
    memo: kopf.Memo,
    logger: logging.Logger,
    stopped: kopf.DaemonStopped,
    pods_by_cluster: kopf.Index[ClusterKey, dict[str, Any]],
    statefulsets_by_name: kopf.Index[ClusterKey, dict[str, Any]],
    **_: Any,
) -> None:
    """The topology loop of one cluster: a pass (observe -> decide -> act -> report) whenever a
    watched change wakes it (watch.WAKES) or pacing.next_pass_in says it is time to look again.
    It ends when kopf stops it or when the cluster's deletion was watched (WakeBoard.gone)."""
    ns, name, uid = str(namespace), str(meta["name"]), str(meta.get("uid"))
    key = (ns, name)
    wake = WAKES.register(key)
    _MEMORY.pop(uid, None)  # a (re)started loop starts from the memory kept in status
    running: Future[float] | None = None
    try:
        while not stopped and not WAKES.is_gone(uid):
            wake.clear()
            work = PassInput(
                body=body, namespace=ns, name=name, uid=uid,
                spec=copy.deepcopy(dict(body.get("spec") or {})),
                meta=copy.deepcopy(dict(body.get("metadata") or {})),
                status=copy.deepcopy(dict(body.get("status") or {})),
                pods=[copy.deepcopy(p) for p in pods_by_cluster.get(key, [])],
                statefulset=next(iter(statefulsets_by_name.get((ns, c.statefulset_name(name)), [])), None),
            )
            # The pass posts Events with kopf.event, which needs kopf's context: run it in a copy.
            context = contextvars.copy_context()
            running = _POOL.submit(context.run, _run_pass, work, memo, logger)
            delay = await asyncio.wrap_future(running)
            if delay > 0 and not wake.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=delay)
        if WAKES.is_gone(uid):
            logger.info("topology loop ends: the cluster was deleted")
    finally:
        WAKES.unregister(key, wake)
        # kopf cancels the loop of a deleted cluster: a pass still running in the pool forgets its
        # cluster when it ends, not before (it would leave its memory behind).
        if running is None:
            _forget(uid)
        else:
            running.add_done_callback(lambda _: _forget(uid))


def _forget(uid: str) -> None:
    SENTINEL.forget(uid)
    _MEMORY.pop(uid, None)
    _WRITTEN.pop(uid, None)


def _run_pass(work: PassInput, memo: kopf.Memo, logger: logging.Logger) -> float:
    """One pass in a worker thread; seconds until the next. Never raises: the loop must go on."""
    with logcontext.bound(work.namespace, work.name):
        try:
            return _topology_pass(work, memo.kube, logger)
        except OtherIncarnation as error:
            logger.info("topology pass stopped: %s", error)
            return PROBE_INTERVAL
        except KubeError as error:
            logger.warning("topology pass: %s", error)
            return ERROR_DELAY
        except Exception:
            logger.exception("topology pass failed")
            return ERROR_DELAY


def _topology_pass(work: PassInput, kube: Kube, logger: logging.Logger) -> float:
    """Observe -> decide -> act -> report for one cluster; returns seconds until the next pass.

    Reads come from the live body and the watch indices (plus a cached Secret): a pass of an idle
    cluster sends the API server nothing; status is patched only where it changed."""
    status, meta = work.status, work.meta
    if not watched_incarnation(work):
        # Deleted, being deleted, or re-created under the same name (kopf ends this loop): its pods
        # and status are another cluster's now.
        logger.info("topology pass skipped: %s", OtherIncarnation(work))
        return PROBE_INTERVAL
    try:
        cluster_spec = parse_spec(work.spec)
    except InvalidSpec:
        return PROBE_INTERVAL  # reported by the reconcile handler; a spec change wakes the loop
    if cluster_spec.suspend:  # observe over SQL and report, act on nothing (handlers/suspend.py)
        write_status(kube, work, status, observe_suspended(kube, work.namespace, work.name, cluster_spec))
        return PROBE_INTERVAL
    conditions = [dict(cond) for cond in (status.get("conditions") or [])]
    if not condition_is(conditions, "CredentialsReady"):
        return PROBE_INTERVAL
    if not restore_finished(cluster_spec, status):
        return PROBE_INTERVAL  # instance 0 is being restored (handlers/restore.py)
    ns, name, pods, statefulset = work.namespace, work.name, work.pods, work.statefulset
    # Pods above spec.instances still count while the StatefulSet keeps them (the primary may be one).
    kept = max(cluster_spec.instances, int(((statefulset or {}).get("spec") or {}).get("replicas") or 0))
    tls_secret = _tls_pass(kube, work.body, cluster_spec, meta, ns, logger)
    endpoints = [e for e in (pod_endpoint(p, kept, tls_secret) for p in pods) if e is not None]
    if not endpoints:
        return PROBE_INTERVAL
    secret_data = SECRETS.get(kube, ns, credentials_secret(cluster_spec, name))
    if secret_data is None:
        return PROBE_INTERVAL
    state = day2.state_for(work.uid)
    accepted = spec_accepted(status, cluster_spec)
    options = day2.topology_options(cluster_spec, state, accepted)
    drain_target = drain_switchover(kube, pods, logger)
    if drain_target is not None:
        options["move_primary_to"] = drain_target  # the primary's node is being drained
    pods_by_ordinal = {e.ordinal: e.pod_name for e in endpoints}
    uids = {p["metadata"]["name"]: p["metadata"].get("uid") for p in pods}

    labels = {p["metadata"]["name"]: (p["metadata"].get("labels") or {}).get(c.LABEL_ROLE) for p in pods}

    def fence_pod(ordinal: int) -> bool:
        # Kubernetes-level fence of an old primary SQL could not fence: no Service routes to it, and
        # deleting the pod ends its process (and every client connection) before a promotion.
        pod = pods_by_ordinal.get(ordinal)
        if pod is None:
            return True
        try:
            kube.set_pod_label(ns, pod, c.LABEL_ROLE, c.Role.NONE.value)
            labels[pod] = c.Role.NONE.value
            kube.delete("v1", "Pod", ns, pod, uids.get(pod))
        except KubeError as error:
            logger.warning("could not fence pod %s: %s", pod, error)
            return False
        logger.warning("pod %s fenced: unlabelled and deleted", pod)
        return True

    def route_primary(old: int | None, new: int) -> None:
        # Right after a promotion: the old primary's label off first (as apply_role_labels does),
        # then the new one's on, so the -primary Service routes clients before the pass ends.
        former = pods_by_ordinal.get(old) if old is not None else None
        if former is not None and labels.get(former) == c.Role.PRIMARY.value:
            kube.set_pod_label(ns, former, c.LABEL_ROLE, c.Role.NONE.value)
            labels[former] = c.Role.NONE.value
        pod = pods_by_ordinal.get(new)
        if pod is not None and labels.get(pod) != c.Role.PRIMARY.value and pod not in fenced_pods(meta):
            kube.set_pod_label(ns, pod, c.LABEL_ROLE, c.Role.PRIMARY.value)
            labels[pod] = c.Role.PRIMARY.value
            logger.info("pod %s role label -> primary (promoted)", pod)

    def checkpoint(memory: TopologyMemory) -> None:
        # The operation in progress reaches status before the promotion it announces.
        topology = {"topology": memory.to_dict()}
        if not kube.patch_status(f"{c.API_GROUP}/{c.API_VERSION}", c.KIND, ns, name, topology,
                                 uid=work.uid, current=status):
            raise OtherIncarnation(work)  # no promotion for a cluster that is not this loop's any more
        _MEMORY[work.uid] = memory

    previous = _MEMORY.get(work.uid) or TopologyMemory.from_dict(status.get("topology"))
    result = reconcile_topology(
        endpoints,
        secret_data,
        cluster_spec.flavor,
        cluster_spec.replication.mode.value,
        previous,
        cluster_spec.replication.switchover_to,
        time.time(),
        TopologySettings(
            grace_period=float(cluster_spec.replication.failover_grace_seconds),
            lag_threshold=cluster_spec.replication.max_lag_seconds,
        ),
        allow_data_loss=cluster_spec.replication.allow_data_loss_on_failover,
        fence_pod=fence_pod,
        route_primary=route_primary,
        checkpoint=checkpoint,
        **options,
    )
    _MEMORY[work.uid] = result.memory
    watch_primary(work.uid, (ns, name), endpoints, result.primary, secret_data)
    for action in result.actions:
        logger.info("topology action: %s", action)
    record_metrics(ns, name, result)
    tls_per_instance(work.uid, endpoints, result, secret_data, cluster_spec,
                     tls_secret.get(c.KEY_TLS_CERT, ""), work.body, logger)
    if cluster_spec.monitoring.exporter:
        ensure_exporter_users(work.uid, endpoints, result, secret_data, cluster_spec, logger, state.seeds)
    apply_role_labels(kube, ns, pods, meta, result, logger)
    # The pass took a while: start from the newest status the watch brought (the reconcile
    # handler's conditions for a new generation must not be overwritten with older ones).
    fresh = copy.deepcopy(dict(work.body.get("status") or {}))
    fresh_spec = copy.deepcopy(dict(work.body.get("spec") or {}))
    try:
        accepted = spec_accepted(fresh, cluster_spec) and parse_spec(fresh_spec).wire() == cluster_spec.wire()
    except InvalidSpec:
        accepted = False
    if accepted:
        day2.after_topology(kube, work.body, cluster_spec, pods, statefulset, result, state, logger)
    conditions = [dict(cond) for cond in (fresh.get("conditions") or [])]
    fields = topology_status(
        cluster_spec,
        name,
        result,
        conditions,
        list(fresh.get("roleChanges") or []),
        meta.get("generation"),
        now_iso(),
        fresh.get("phase"),
    )
    if condition_is(conditions, VALID, "False") or condition_is(conditions, RESOURCES_READY, "False"):
        # The reconcile handler refused the current spec: the instances keep running, but the phase
        # keeps saying that the spec needs a change until it gets one.
        fields["phase"] = "Invalid"
    write_status(kube, work, fresh, fields)
    for event in result.events:
        try:
            kopf.event(work.body, type=event.type, reason=event.reason, message=event.message)
        except Exception as error:  # an Event is a courtesy: it must never stop the loop
            logger.warning("could not post event %s: %s", event.reason, error)
    return next_pass_in(result.memory, float(cluster_spec.replication.failover_grace_seconds), time.time())


def watch_primary(uid: str, key: ClusterKey, endpoints: list[InstanceEndpoint], primary: int | None,
                  secret_data: Mapping[str, str]) -> None:
    """Keep the sentinel's idle session on the serving primary: its end wakes this loop at once
    (mysql/sentinel.py); none while no primary serves."""
    endpoint = next((e for e in endpoints if e.ordinal == primary), None)
    if endpoint is None:
        SENTINEL.forget(uid)
        return
    SENTINEL.watch(uid, endpoint.host, endpoint.port, ClusterCredentials.from_secret(secret_data).operator,
                   lambda: WAKES.wake_threadsafe(key), tls=endpoint.tls,
                   timeouts=Timeouts(connect=2.0, read=2.0, write=2.0))


def apply_role_labels(
    kube: Kube,
    ns: str,
    pods: list[dict[str, Any]],
    meta: Mapping[str, Any],
    result: TopologyResult,
    logger: logging.Logger,
) -> None:
    """Move the role labels the Services select by; promotions only once every demotion landed.
    A pod the user fenced (`kubectl mysql fence`, the cluster's annotation) carries none."""
    current = {p["metadata"]["name"]: (p["metadata"].get("labels") or {}).get(c.LABEL_ROLE) for p in pods}
    wanted = without_fenced(desired_role_labels(result), meta)  # kubectl mysql fence (handlers/suspend.py)
    demotions, promotions = role_label_changes(current, wanted)
    demoted = True
    for pod, role in demotions:
        try:
            kube.set_pod_label(ns, pod, c.LABEL_ROLE, role)
            logger.info("pod %s role label -> %s", pod, role)
        except KubeError as error:
            demoted = demoted and current.get(pod) != c.Role.PRIMARY.value
            logger.warning("could not label pod %s: %s", pod, error)
    for pod, role in promotions if demoted else []:
        try:
            kube.set_pod_label(ns, pod, c.LABEL_ROLE, role)
            logger.info("pod %s role label -> %s", pod, role)
        except KubeError as error:
            logger.warning("could not label pod %s: %s", pod, error)


def status_changes(
    fresh: Mapping[str, Any], fields: Mapping[str, Any], written: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The status fields to patch: those differing from the status the watch last brought, less
    those this loop already wrote with the same value (the watch has not brought them back yet)."""
    return {
        key: value for key, value in fields.items()
        if fresh.get(key) != value and (written is None or key not in written or written[key] != value)
    }


def write_status(kube: Kube, work: PassInput, fresh: Mapping[str, Any], fields: Mapping[str, Any]) -> None:
    """Patch the status fields that changed, on the loop's incarnation only (Kube.patch_status tests
    the uid first); OtherIncarnation when the name holds another cluster now, or none."""
    api = f"{c.API_GROUP}/{c.API_VERSION}"
    version = str((work.body.get("metadata") or {}).get("resourceVersion"))
    last = _WRITTEN.get(work.uid)
    written = last[1] if last is not None and last[0] == version else None
    changes = status_changes(fresh, fields, written)
    if not changes:
        return
    try:
        done = kube.patch_status(api, c.KIND, work.namespace, work.name, changes, uid=work.uid, current=fresh)
    except KubeError as error:
        if error.status != 422:
            raise
        # The watch's copy may lag behind our own last write (a key it still shows was removed
        # already, and a JSON patch cannot remove it twice): once more against the status read now.
        live = kube.get(api, c.KIND, work.namespace, work.name)
        if not same_incarnation(live, work.uid):
            raise OtherIncarnation(work) from None
        current = dict((live or {}).get("status") or {})
        written, changes = None, {key: value for key, value in fields.items() if current.get(key) != value}
        done = not changes or kube.patch_status(api, c.KIND, work.namespace, work.name, changes,
                                                uid=work.uid, current=current)
    if not done:
        raise OtherIncarnation(work)
    _WRITTEN[work.uid] = (version, {**(written or {}), **changes})


def same_incarnation(live: Mapping[str, Any] | None, uid: str) -> bool:
    """Whether the object read now is the incarnation a handler was called for, not being deleted."""
    metadata = (live or {}).get("metadata") or {}
    return bool(live) and metadata.get("uid") == uid and not metadata.get("deletionTimestamp")


def watched_incarnation(work: PassInput) -> bool:
    """Whether the loop's cluster is still the one the watch shows under its name (no GET: the
    watch stream saw every creation and deletion), and not being deleted."""
    return WAKES.is_current((work.namespace, work.name), work.uid) and same_incarnation(
        {"metadata": work.meta}, work.uid)
