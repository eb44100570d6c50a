"""What the topology loops read instead of asking the API server: watch streams and caches.

- Pods and StatefulSets of our clusters come from kopf indices (kept by kopf's watch streams), so
  an idle cluster costs no request: `pods_by_cluster`, `statefulsets_by_name`.
- A watched pod change that matters (pacing.pod_change_wakes: a container stopped, restarted or
  failed its probe, an IP came or went, the pod is being deleted) wakes the cluster's topology loop
  at once; so does a MysqlCluster change that matters (pacing.cluster_signature).
- Nodes (is the primary's node cordoned for a drain?) are read through a cache shared by every
  cluster (`NodeCache`): at most one request per node every `NODE_TTL` seconds.
- Credentials Secrets are read once and kept (`SecretCache`): read again when the reconcile handler
  has touched them (a spec change), and at most every `SECRET_TTL` seconds, so a user rotating their
  own Secret is picked up without the operator watching every Secret in the namespace.

The wake-ups are asyncio events of the operator's event loop; the handlers here are async so they
run on that loop (no thread hop, no API call). kopf's "Handler ... succeeded." line for each of their
runs is dropped (`QuietWatchHandlers`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import kopf

from mysql_operator import conventions as c
from mysql_operator.kube import Kube
from mysql_operator.resources.credentials import decode_secret_data
from mysql_operator.topology.pacing import cluster_signature, pod_change_wakes

CR = (c.API_GROUP, c.API_VERSION, c.PLURAL)
SECRET_TTL = 300.0  # seconds: an unchanged credentials Secret is re-read this rarely
NODE_TTL = 60.0  # seconds: a node's cordon is read this rarely, once for every cluster on it (a drain
# waits on the primary's budget until the switchover, so a minute late costs a minute, not safety)

GONE_TTL = 3600.0  # seconds a deleted cluster's uid is remembered (its loop ends within PROBE_INTERVAL)

ClusterKey = tuple[str, str]  # (namespace, cluster name)


class WakeBoard:
    """One asyncio event per running topology loop; `wake` starts that loop's next pass now.

    It also says which incarnation (uid) of a cluster's name the watch shows now (`seen`,
    `is_current`) and which were deleted (`gone`): a loop acts only for the incarnation it was started
    for. kopf stops a daemon only once its object carries a deletionTimestamp, which a MysqlCluster
    deleted without a finalizer (ours carry none) gets only through finalizers.stop_timers_on_delete;
    the loop also ends on the deletion it watched itself, so a cluster created again under the same
    name never has two loops."""

    def __init__(self) -> None:
        self._events: dict[ClusterKey, asyncio.Event] = {}
        self._gone: dict[str, float] = {}  # uid -> when its deletion was seen (monotonic seconds)
        self._current: dict[ClusterKey, str] = {}  # the uid the watch last showed under that name
        self._loop: asyncio.AbstractEventLoop | None = None

    def register(self, key: ClusterKey) -> asyncio.Event:
        """A new loop's event (its own: a loop of an older object of that name never shares it)."""
        event = asyncio.Event()
        self._events[key] = event
        self._loop = asyncio.get_running_loop()
        return event

    def unregister(self, key: ClusterKey, event: asyncio.Event) -> None:
        if self._events.get(key) is event:
            del self._events[key]

    def wake(self, key: ClusterKey) -> bool:
        """Wake the loop of `key` (from the event loop's thread); False when none runs."""
        event = self._events.get(key)
        if event is None:
            return False
        event.set()
        return True

    def wake_threadsafe(self, key: ClusterKey) -> None:
        """`wake` from any thread (the primary sentinel's)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.wake, key)

    def gone(self, key: ClusterKey, uid: str, now: float | None = None) -> None:
        """The cluster `uid` was deleted: its loop ends at its next wake-up (woken now)."""
        now = time.monotonic() if now is None else now
        # A deleted uid is kept long enough for a loop still in its initial delay to see it.
        self._gone = {u: t for u, t in self._gone.items() if now - t < GONE_TTL}
        self._gone[uid] = now
        if self._current.get(key) == uid:  # not a newer incarnation whose creation was seen first
            del self._current[key]
        self.wake(key)

    def is_gone(self, uid: str) -> bool:
        return uid in self._gone

    def seen(self, key: ClusterKey, uid: str) -> None:
        """The watch showed the cluster `uid` under the name `key` (it exists, maybe being deleted)."""
        if uid not in self._gone:
            self._current[key] = uid

    def is_current(self, key: ClusterKey, uid: str) -> bool:
        """Whether `uid` is the incarnation the watch shows under `key` now, and not deleted."""
        return self._current.get(key) == uid and uid not in self._gone


WAKES = WakeBoard()


class QuietWatchHandlers(logging.Filter):
    """Drops kopf's "Handler 'pod_changed' succeeded." (and cluster_changed) lines. kopf logs one per
    handler run, and these run on every watch event of every instance pod and cluster (each status
    write included): at a few hundred clusters they would be most of the log, and a line about a Pod
    would be the only one in a cluster's namespace not naming the cluster. Failures are still logged."""

    QUIET = frozenset(f"Handler {name!r} succeeded." for name in ("pod_changed", "cluster_changed"))

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in self.QUIET


def quiet_watch_handlers(logger: logging.Logger | None = None) -> None:
    """Install QuietWatchHandlers on kopf's per-object logger (once)."""
    target = logger or logging.getLogger("kopf.objects")
    if not any(isinstance(f, QuietWatchHandlers) for f in target.filters):
        target.addFilter(QuietWatchHandlers())
_POD_SEEN: dict[tuple[str, str], Mapping[str, Any]] = {}
_CLUSTER_SEEN: dict[ClusterKey, tuple[Any, ...]] = {}


def cluster_of_pod(labels: Mapping[str, str]) -> str | None:
    """The cluster an instance pod belongs to (its instance label)."""
    return labels.get(c.LABEL_INSTANCE)


@kopf.index("v1", "pods", labels={c.LABEL_NAME: c.APP_NAME})
async def pods_by_cluster(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[ClusterKey, dict[str, Any]] | None:
    """(namespace, cluster) -> the cluster's instance pods, as the watch stream last saw them."""
    cluster = cluster_of_pod(labels)
    if cluster is None:
        return None
    return {(str(namespace), cluster): {
        "metadata": dict(body.metadata), "spec": dict(body.spec), "status": dict(body.status)}}


@kopf.index("apps", "v1", "statefulsets", labels={c.LABEL_MANAGED_BY: c.MANAGED_BY})
async def statefulsets_by_name(
    namespace: str | None, name: str | None, body: kopf.Body, **_: Any
) -> dict[ClusterKey, dict[str, Any]]:
    """(namespace, StatefulSet name) -> the StatefulSet, as the watch stream last saw it."""
    return {(str(namespace), str(name)): {"metadata": dict(body.metadata), "spec": dict(body.spec),
                                          "status": dict(body.status)}}


@kopf.on.event("v1", "pods", labels={c.LABEL_NAME: c.APP_NAME})
async def pod_changed(
    type: str | None, namespace: str | None, name: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> None:
    """Wake the pod's cluster when the pod changed in a way the topology depends on."""
    cluster = cluster_of_pod(labels)
    if cluster is None:
        return
    key = (str(namespace), str(name))
    new = None if type == "DELETED" else {"metadata": dict(body.metadata), "status": dict(body.status)}
    old = _POD_SEEN.get(key)
    if new is None:
        _POD_SEEN.pop(key, None)
    else:
        _POD_SEEN[key] = new
    if old is not None and pod_change_wakes(old, new):
        WAKES.wake((str(namespace), cluster))


@kopf.on.event(*CR)
async def cluster_changed(type: str | None, namespace: str | None, name: str | None, body: kopf.Body,
                          **_: Any) -> None:
    """Wake a cluster's loop when its spec was accepted, its credentials got ready, and the like;
    end it when the cluster was deleted."""
    key = (str(namespace), str(name))
    if type == "DELETED":
        _CLUSTER_SEEN.pop(key, None)
        WAKES.gone(key, str((body.get("metadata") or {}).get("uid")))
        return
    WAKES.seen(key, str((body.get("metadata") or {}).get("uid")))
    signature = cluster_signature(body)
    if _CLUSTER_SEEN.get(key, signature) != signature:
        WAKES.wake(key)
    _CLUSTER_SEEN[key] = signature


class SecretCache:
    """Decoded Secret data by (namespace, name), fetched once and kept for `ttl` seconds or until
    `forget`. Thread-safe: topology passes run in a thread pool."""

    def __init__(self, ttl: float = SECRET_TTL) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._data: dict[tuple[str, str], tuple[float, dict[str, str]]] = {}

    def get(self, kube: Kube, namespace: str, name: str, now: float | None = None) -> dict[str, str] | None:
        """The Secret's decoded data (None when it does not exist; absence is not cached)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            hit = self._data.get((namespace, name))
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        secret = kube.get("v1", "Secret", namespace, name)
        if secret is None:
            self.forget(namespace, name)
            return None
        data = decode_secret_data(secret.get("data"))
        with self._lock:
            self._data[(namespace, name)] = (now, data)
        return data

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._data.pop((namespace, name), None)


SECRETS = SecretCache()


class NodeCache:
    """Whether a Node is cordoned, read at most every `ttl` seconds per node and shared by every
    cluster: a drain is noticed within `ttl`, and the cost does not grow with the clusters."""

    def __init__(self, ttl: float = NODE_TTL) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, bool]] = {}

    def cordoned(self, kube: Kube, node: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            hit = self._seen.get(node)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        value = kube.node_cordoned(node)
        with self._lock:
            self._seen[node] = (now, value)
        return value


NODES = NodeCache()
