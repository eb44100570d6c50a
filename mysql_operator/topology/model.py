"""The vocabulary of the topology decisions: what the operator saw and remembers (ClusterView), the
actions it can take, and the problems and plans it reports. Plain frozen values, no logic."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from mysql_operator.conventions import Flavor
from mysql_operator.mysql.observe import InstanceObservation


class ReplicationMode(StrEnum):
    ASYNC = "async"
    SEMI_SYNC = "semi-sync"


@dataclass(frozen=True)
class Deposed:
    """A former primary the operator replaced; it must never take writes again until it rejoins.

    `lossless`: it was replaced by a semi-sync failover that had every acknowledging replica, so its
    transactions the new primary lacks were never acknowledged to a client."""

    ordinal: int
    lossless: bool = False


@dataclass(frozen=True)
class Operation:
    """A failover or switchover started and not yet known to be complete (kept in status)."""

    kind: str  # "failover" | "switchover"
    source: int | None
    target: int
    lossless: bool = False


@dataclass(frozen=True)
class ClusterView:
    """Everything the decision needs: observations plus what the operator remembers."""

    flavor: Flavor
    observations: tuple[InstanceObservation, ...]
    last_primary: int | None = None
    last_primary_gtid: str = ""
    switchover_to: int | None = None
    primary_unreachable_for: float = 0.0
    grace_period: float = 10.0
    replication_mode: ReplicationMode = ReplicationMode.ASYNC
    # Day-2: instances wanted (higher ordinals are on their way out), whether an empty instance is
    # seeded from a donor rather than attached to replicate from nothing, whether a replica that
    # cannot replicate is rebuilt, instances with a seed in progress, and a primary wanted by a rollout.
    desired_instances: int | None = None
    seed_new_instances: bool = False
    auto_reseed: bool = False
    seeding: frozenset[int] = frozenset()
    move_primary_to: int | None = None
    # Failover memory and safety settings (see the module docstring).
    deposed: tuple[Deposed, ...] = ()
    operation: Operation | None = None
    acknowledgers: frozenset[int] = frozenset()
    # Semi-sync: every transaction a replica was seen holding (its own writes aside) since the
    # primary stopped answering. Any of them may have been acknowledged to a client; a replica that
    # loses its relay log meanwhile (MariaDB discards it when both replication threads start again,
    # as a restart does) does not make them less acknowledged.
    held_while_unreachable: str = ""
    # Instances fenced at the Kubernetes level and not seen since: not fenced again every pass.
    pods_fenced: frozenset[int] = frozenset()
    terminating: frozenset[int] = frozenset()
    allow_data_loss: bool = False
    switchover_max_lag: int = 1

    def wanted(self, ordinal: int) -> bool:
        """Whether the ordinal stays (below the desired instance count, its pod not terminating)."""
        if ordinal in self.terminating:
            return False
        return self.desired_instances is None or ordinal < self.desired_instances

    def get(self, ordinal: int | None) -> InstanceObservation | None:
        for observation in self.observations:
            if observation.ordinal == ordinal:
                return observation
        return None

    def deposed_entry(self, ordinal: int) -> Deposed | None:
        return next((d for d in self.deposed if d.ordinal == ordinal), None)


# Actions --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bootstrap:
    """Make a fresh instance the first primary (users, writable, application database)."""

    ordinal: int


@dataclass(frozen=True)
class AttachReplica:
    ordinal: int
    source: int
    reason: str


@dataclass(frozen=True)
class RepairReplica:
    """Restart or repoint a replica that does not replicate from the primary."""

    ordinal: int
    source: int
    reason: str
    repoint: bool


@dataclass(frozen=True)
class Promote:
    """Make an instance the writable primary (it holds every transaction the others have)."""

    ordinal: int
    reason: str


@dataclass(frozen=True)
class Failover:
    """Fence the failed primary, stop IO on every candidate, wait for relay logs, choose, promote,
    repoint. `lossless`: semi-sync with every acknowledging replica among the candidates."""

    failed: int | None
    candidates: tuple[int, ...]
    reason: str
    lossless: bool = False


@dataclass(frozen=True)
class Switchover:
    """Planned move of the primary: fence, wait for catch-up, promote, repoint `repoint`."""

    source: int
    target: int
    repoint: tuple[int, ...] = ()


@dataclass(frozen=True)
class Fence:
    """Make an instance read-only. `bind_root`: also for root (MariaDB READ_ONLY ADMIN), given
    back when it becomes a replica or the primary; not for a replica that keeps replicating."""

    ordinal: int
    reason: str
    bind_root: bool = True


@dataclass(frozen=True)
class Seed:
    """Wipe `ordinal` and copy a consistent snapshot of `donor` into it, then attach it to `source`.

    `rebuild` is set when the instance had data of its own (a re-seed), not for an empty one."""

    ordinal: int
    donor: int
    source: int
    reason: str
    rebuild: bool = False
    # A deposed primary's transactions the new primary lacks, recorded before they are wiped.
    discarded: str = ""
    discarded_count: int = 0


@dataclass(frozen=True)
class EnableSemiSyncSource:
    ordinal: int


@dataclass(frozen=True)
class DisableSemiSyncSource:
    ordinal: int


Action = (
    Bootstrap
    | AttachReplica
    | RepairReplica
    | Promote
    | Failover
    | Switchover
    | Fence
    | Seed
    | EnableSemiSyncSource
    | DisableSemiSyncSource
)


@dataclass(frozen=True)
class Problem:
    """Something a human should know; becomes a condition reason and message."""

    reason: str
    message: str
    ordinal: int | None = None


@dataclass(frozen=True)
class Plan:
    primary: int | None
    actions: tuple[Action, ...] = ()
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class Choice:
    """The outcome of choosing a failover candidate: an ordinal, or why there is none. `waiting`:
    the candidate that holds everything has not applied its relay log yet (try again, never skip it)."""

    ordinal: int | None
    problems: tuple[Problem, ...] = field(default_factory=tuple)
    waiting: bool = False
