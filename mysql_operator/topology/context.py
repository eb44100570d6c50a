"""The working state of one topology pass: where the instances are, how to reach them, tunables,
and what the pass has done and found so far. Shared by the executor, seeding and reporting."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from mysql_operator.conventions import MYSQL_PORT, Flavor
from mysql_operator.mysql.dialect import Dialect
from mysql_operator.mysql.observe import InstanceObservation, observe_instance, unreachable
from mysql_operator.mysql.session import Login, MysqlError, Timeouts, open_session
from mysql_operator.mysql.users import ClusterCredentials, ensure_system_users
from mysql_operator.tls.client import ClientTls
from mysql_operator.topology.decide import ClusterView, Problem, ReplicationMode

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class InstanceEndpoint:
    """How to reach one instance. `host` is also what replicas use as their source host."""

    ordinal: int
    pod_name: str
    host: str
    port: int = MYSQL_PORT
    tls: ClientTls | None = None  # None: plaintext (TLS off, or no CA known yet)
    terminating: bool = False  # the pod is being deleted: never a candidate, the primary moves off it


@dataclass(frozen=True)
class TopologySettings:
    """Tunables, in seconds."""

    grace_period: float = 10.0
    connect_timeout: float = 2.0
    read_timeout: float = 10.0
    relay_apply_timeout: float = 30.0
    catchup_timeout: float = 30.0
    semi_sync_ack_timeout: float = 5.0
    lag_threshold: int = 30
    seed_timeout: float = 3600.0
    switchover_max_lag: int = 1


@dataclass(frozen=True)
class EventFact:
    type: str  # "Normal" or "Warning"
    reason: str
    message: str


@dataclass(frozen=True)
class TransitionRecord:
    """A failover or switchover, for the status history."""

    kind: str  # "failover" | "switchover"
    at: float  # the caller's clock (`now`) when the pass started
    from_ordinal: int | None
    to_ordinal: int
    reason: str
    seconds: float
    lossless: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Discarded:
    """Transactions of a deposed primary dropped when it was rebuilt (kept in status)."""

    ordinal: int
    gtids: str
    count: int
    at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Kubernetes-level fence of an instance (role label off, pod deleted); whether it was done.
PodFence = Callable[[int], bool]
# Called right after a promotion with (old primary or None, new primary): route clients to the new
# primary now rather than at the end of the pass (handlers/topology.py moves the role labels).
PrimaryRouter = Callable[[int | None, int], None]


@dataclass
class Pass:
    """The mutable working state of one pass."""

    endpoints: dict[int, InstanceEndpoint]
    credentials: ClusterCredentials
    dialect: Dialect
    mode: ReplicationMode
    settings: TopologySettings
    now: float
    view: ClusterView | None = None
    events: list[EventFact] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    transition: TransitionRecord | None = None
    primary: int | None = None
    seeds: Any = None  # SeedWorkers | None (seeding imports this module)
    seeding: dict[int, str] = field(default_factory=dict)
    fence_pod: PodFence | None = None
    route_primary: PrimaryRouter | None = None
    pods_fenced: list[int] = field(default_factory=list)
    discarded: list[Discarded] = field(default_factory=list)
    rejoined: set[int] = field(default_factory=set)
    checkpoint: Callable[[Pass], None] | None = None
    operation: Any = None  # decide.Operation | None: in progress, persisted by `checkpoint`

    @property
    def flavor(self) -> Flavor:
        return self.dialect.flavor

    @property
    def timeouts(self) -> Timeouts:
        s = self.settings
        return Timeouts(connect=s.connect_timeout, read=s.read_timeout, write=s.read_timeout)

    def session(self, ordinal: int, login: Login | None = None) -> Any:
        endpoint = self.endpoints[ordinal]
        return open_session(
            endpoint.host,
            login or self.credentials.operator,
            port=endpoint.port,
            timeouts=self.timeouts,
            secrets=self.credentials.secrets,
            tls=endpoint.tls,
        )

    def event(self, kind: str, reason: str, message: str) -> None:
        log.info("%s: %s", reason, message)
        self.events.append(EventFact(kind, reason, message))

    def pod(self, ordinal: int) -> str:
        endpoint = self.endpoints.get(ordinal)
        return endpoint.pod_name if endpoint is not None else str(ordinal)

    def observe(self, ordinal: int) -> InstanceObservation:
        endpoint = self.endpoints[ordinal]
        observation = observe_instance(
            ordinal, endpoint.host, self.credentials.operator, self.dialect,
            port=endpoint.port, timeouts=self.timeouts, tls=endpoint.tls,
        )
        if not observation.login_refused:
            return observation
        # An instance initialised before the image created the operator's user (root@'%' was made
        # then): create the operator's users as root, unlogged, then look again. New instances have
        # root on localhost only, and this login is refused like the first.
        try:
            with self.session(ordinal, self.credentials.root) as session:
                created = ensure_system_users(session, self.dialect, self.credentials)
        except MysqlError as error:
            return unreachable(ordinal, endpoint.host, error)
        if created:
            self.event("Normal", "UsersCreated", f"instance {ordinal}: created {', '.join(created)}")
        return observe_instance(
            ordinal, endpoint.host, self.credentials.operator, self.dialect,
            port=endpoint.port, timeouts=self.timeouts, tls=endpoint.tls,
        )

    def observe_all(self, ordinals: Sequence[int]) -> dict[int, InstanceObservation]:
        return dict(zip(ordinals, parallel(self.observe, ordinals), strict=True))


def parallel(function: Callable[[int], T], ordinals: Sequence[int]) -> list[T]:
    """`function` over the ordinals, concurrently (each blocks on its own instance)."""
    if len(ordinals) <= 1:
        return [function(o) for o in ordinals]
    with ThreadPoolExecutor(max_workers=len(ordinals)) as pool:
        return list(pool.map(function, ordinals))
