"""One reconcile pass over a cluster's replication topology: observe -> decide -> act -> report.

`reconcile_topology` is what the kopf timer calls every few seconds (from a thread: it blocks on
SQL, every wait bounded). All decisions are in `decide`; this module only does I/O at the edges and
turns the outcome into status facts (roles, conditions, events, a failover/switchover record) plus
the memory the caller keeps in status and passes back next time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from mysql_operator.conventions import MYSQL_PORT, Flavor, Role
from mysql_operator.mysql import actions, gtid, seed, variables
from mysql_operator.mysql.dialect import Dialect, MysqlDialect, dialect_for
from mysql_operator.mysql.observe import (
    InstanceObservation,
    observe_instance,
    read_semi_sync,
    unreachable,
)
from mysql_operator.mysql.session import Login, MysqlError, Timeouts, open_session
from mysql_operator.mysql.users import ClusterCredentials, ensure_application, ensure_system_users
from mysql_operator.topology.decide import (
    Action,
    AttachReplica,
    Bootstrap,
    ClusterView,
    DisableSemiSyncSource,
    EnableSemiSyncSource,
    Failover,
    Fence,
    Plan,
    Problem,
    Promote,
    RepairReplica,
    ReplicationMode,
    Seed,
    Switchover,
    choose_new_primary,
    decide,
)
from mysql_operator.topology.seeding import SeedOutcome, SeedWorkers

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class InstanceEndpoint:
    """How to reach one instance. `host` is also what replicas use as their source host."""

    ordinal: int
    pod_name: str
    host: str
    port: int = MYSQL_PORT


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


@dataclass(frozen=True)
class TopologyMemory:
    """What one pass tells the next; keep it in status (`to_dict` / `from_dict`)."""

    primary: int | None = None
    primary_gtid: str = ""
    primary_unreachable_since: float | None = None
    problems: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "problems": list(self.problems)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> TopologyMemory:
        if not data:
            return cls()
        return cls(
            primary=data.get("primary"),
            primary_gtid=str(data.get("primary_gtid") or ""),
            primary_unreachable_since=data.get("primary_unreachable_since"),
            problems=tuple(data.get("problems") or ()),
        )


@dataclass(frozen=True)
class InstanceStatus:
    ordinal: int
    pod_name: str
    role: Role
    ready: bool
    reachable: bool
    gtid: str
    lag_seconds: int | None
    message: str = ""


@dataclass(frozen=True)
class ConditionFact:
    type: str
    status: bool
    reason: str
    message: str


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TopologyResult:
    primary: int | None
    instances: tuple[InstanceStatus, ...]
    conditions: tuple[ConditionFact, ...]
    events: tuple[EventFact, ...]
    transition: TransitionRecord | None
    memory: TopologyMemory
    actions: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()


@dataclass
class _Pass:
    """The mutable working state of one pass."""

    endpoints: dict[int, InstanceEndpoint]
    credentials: ClusterCredentials
    dialect: Dialect
    mode: ReplicationMode
    settings: TopologySettings
    previous: TopologyMemory
    now: float
    events: list[EventFact] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    transition: TransitionRecord | None = None
    primary: int | None = None
    seeds: SeedWorkers | None = None
    seeding: dict[int, str] = field(default_factory=dict)

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
        )

    def event(self, kind: str, reason: str, message: str) -> None:
        log.info("%s: %s", reason, message)
        self.events.append(EventFact(kind, reason, message))

    def observe(self, ordinal: int) -> InstanceObservation:
        endpoint = self.endpoints[ordinal]
        observation = observe_instance(
            ordinal, endpoint.host, self.credentials.operator, self.dialect,
            port=endpoint.port, timeouts=self.timeouts,
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
            port=endpoint.port, timeouts=self.timeouts,
        )

    def observe_all(self, ordinals: Sequence[int]) -> dict[int, InstanceObservation]:
        return dict(zip(ordinals, _parallel(self.observe, ordinals), strict=True))


def _parallel(function: Callable[[int], T], ordinals: Sequence[int]) -> list[T]:
    if len(ordinals) <= 1:
        return [function(o) for o in ordinals]
    with ThreadPoolExecutor(max_workers=len(ordinals)) as pool:
        return list(pool.map(function, ordinals))


def reconcile_topology(
    instances: Sequence[InstanceEndpoint],
    credentials: Mapping[str, str] | ClusterCredentials,
    flavor: Flavor | str,
    replication_mode: ReplicationMode | str,
    previous: TopologyMemory,
    switchover_to: int | None,
    now: float,
    settings: TopologySettings | None = None,
    *,
    desired_instances: int | None = None,
    seed_new_instances: bool = False,
    auto_reseed: bool = False,
    move_primary_to: int | None = None,
    live_config: Mapping[str, str] | None = None,
    seeds: SeedWorkers | None = None,
) -> TopologyResult:
    """Observe every instance, take the next step, and report.

    Day-2 options: `desired_instances` (higher ordinals are being removed: the primary moves off
    them), `seed_new_instances` (an empty instance is seeded from a donor instead of replicating
    from nothing), `auto_reseed` (a replica that cannot replicate is rebuilt), `move_primary_to`
    (a rollout wants the primary there; takes precedence over `switchover_to`), `live_config`
    (dynamic keys set on every instance), `seeds` (run seeds in the background across passes;
    without it a seed runs within the pass).

    `credentials` is the decoded credentials Secret (conventions.KEY_*) or ClusterCredentials.
    `now` is wall-clock seconds (time.time()), used for the grace period and records only.
    Never raises for SQL trouble: failures become problems, conditions and Warning events.
    """
    creds = credentials if isinstance(credentials, ClusterCredentials) else (
        ClusterCredentials.from_secret(credentials)
    )
    work = _Pass(
        endpoints={e.ordinal: e for e in instances},
        credentials=creds,
        dialect=dialect_for(Flavor(flavor)),
        mode=ReplicationMode(replication_mode),
        settings=settings or TopologySettings(),
        previous=previous,
        now=now,
        seeds=seeds,
    )
    if seeds is not None:
        for outcome in seeds.finished():
            _seed_outcome_event(work, outcome)
        work.seeding = seeds.running()
    ordinals = sorted(work.endpoints)
    observed = work.observe_all(ordinals)
    since = _unreachable_since(previous, observed, now)
    view = ClusterView(
        flavor=work.flavor,
        observations=tuple(observed[o] for o in ordinals),
        last_primary=previous.primary,
        last_primary_gtid=previous.primary_gtid,
        switchover_to=switchover_to,
        primary_unreachable_for=0.0 if since is None else max(0.0, now - since),
        grace_period=work.settings.grace_period,
        replication_mode=work.mode,
        desired_instances=desired_instances,
        seed_new_instances=seed_new_instances,
        auto_reseed=auto_reseed,
        seeding=frozenset(work.seeding),
        move_primary_to=move_primary_to,
    )
    plan = decide(view)
    work.primary = plan.primary
    for action in plan.actions:
        try:
            _act(work, action, observed)
        except MysqlError as error:
            work.problems.append(Problem("ActionFailed", f"{_describe(action)}: {error}"))
            work.event("Warning", "ActionFailed", f"{_describe(action)}: {error}")
    if live_config:
        _apply_live_config(work, observed, live_config)
    if plan.actions:
        observed = work.observe_all(ordinals)
    return _report(work, plan, observed, since)


def _unreachable_since(
    previous: TopologyMemory, observed: Mapping[int, InstanceObservation], now: float
) -> float | None:
    if previous.primary is None:
        return None
    current = observed.get(previous.primary)
    if current is not None and current.reachable:
        return None
    return previous.primary_unreachable_since if previous.primary_unreachable_since is not None else now


def _describe(action: Action) -> str:
    return f"{type(action).__name__}({', '.join(f'{k}={v}' for k, v in asdict(action).items())})"


# Acting ---------------------------------------------------------------------------------------------


def _act(work: _Pass, action: Action, observed: Mapping[int, InstanceObservation]) -> None:
    work.done.append(_describe(action))
    dialect = work.dialect
    if isinstance(action, Bootstrap):
        with work.session(action.ordinal) as session:
            ensure_system_users(session, dialect, work.credentials)
            actions.promote(session, dialect)
            created = ensure_application(session, dialect, work.credentials)
        work.primary = action.ordinal
        extra = f"; created {', '.join(created)}" if created else ""
        work.event("Normal", "PrimaryBootstrapped", f"instance {action.ordinal} is the first primary{extra}")
    elif isinstance(action, AttachReplica | RepairReplica):
        _attach(work, action)
    elif isinstance(action, Promote):
        with work.session(action.ordinal) as session:
            actions.promote(session, dialect)
        _ensure_application(work, action.ordinal)
        work.primary = action.ordinal
        work.event("Normal", "PrimaryPromoted", f"instance {action.ordinal} is writable: {action.reason}")
    elif isinstance(action, Fence):
        with work.session(action.ordinal) as session:
            killed = actions.fence(session, dialect)
        work.event("Warning", "InstanceFenced",
                   f"instance {action.ordinal} set read-only ({killed} connections ended): {action.reason}")
    elif isinstance(action, EnableSemiSyncSource):
        with work.session(action.ordinal) as session:
            actions.enable_semi_sync_source(session, dialect)
        work.event("Normal", "SemiSyncEnabled", f"primary {action.ordinal} waits for a replica's ack")
    elif isinstance(action, DisableSemiSyncSource):
        with work.session(action.ordinal) as session:
            actions.disable_semi_sync_source(session, dialect)
        work.event("Normal", "SemiSyncDisabled", f"primary {action.ordinal} replicates asynchronously")
    elif isinstance(action, Seed):
        _start_seed(work, action)
    elif isinstance(action, Failover):
        _failover(work, action, observed)
    elif isinstance(action, Switchover):
        _switchover(work, action, observed)


def _attach(work: _Pass, action: AttachReplica | RepairReplica) -> None:
    source = work.endpoints[action.source]
    with work.session(action.ordinal) as session:
        # The operator's user exists from the image's first start; the replication user is ours to
        # create (unlogged, idempotent) before an instance replicates or can be promoted.
        ensure_system_users(session, work.dialect, work.credentials)
        if isinstance(action, RepairReplica) and not action.repoint:
            actions.start_replica(session, work.dialect)
            work.event("Normal", "ReplicaRestarted", f"instance {action.ordinal}: {action.reason}")
            return
        actions.configure_replica(
            session, work.dialect, source_host=source.host, source_port=source.port,
            replication=work.credentials.replication, semi_sync=work.mode is ReplicationMode.SEMI_SYNC,
        )
    reason = "ReplicaAttached" if isinstance(action, AttachReplica) else "ReplicaRepointed"
    work.event("Normal", reason, f"instance {action.ordinal} replicates from {action.source} "
                                 f"({action.reason})")


def _pod(work: _Pass, ordinal: int) -> str:
    endpoint = work.endpoints.get(ordinal)
    return endpoint.pod_name if endpoint is not None else str(ordinal)


def _start_seed(work: _Pass, action: Seed) -> None:
    verb = "re-seeding" if action.rebuild else "seeding"
    description = f"{verb} from {_pod(work, action.donor)}"
    run = _seed_runner(work, action)
    if work.seeds is None:
        seconds = run()
        _seed_outcome_event(work, SeedOutcome(action.ordinal, description, seconds))
        return
    if work.seeds.start(action.ordinal, description, run):
        work.seeding[action.ordinal] = description
        work.event("Warning" if action.rebuild else "Normal", "ReseedStarted" if action.rebuild else
                   "SeedStarted", f"instance {action.ordinal}: {description} ({action.reason})")


def _seed_runner(work: _Pass, action: Seed) -> Callable[[], float]:
    """The seed as a closure over immutable values only, safe to run in another thread."""
    dialect, creds, settings = work.dialect, work.credentials, work.settings
    target, donor, source = (work.endpoints[o] for o in (action.ordinal, action.donor, action.source))
    semi_sync = work.mode is ReplicationMode.SEMI_SYNC
    seed_timeouts = Timeouts(connect=settings.connect_timeout, read=settings.seed_timeout,
                             write=settings.read_timeout)

    def session(endpoint: InstanceEndpoint, login: Login, timeouts: Timeouts | None = None) -> Any:
        return open_session(endpoint.host, login, port=endpoint.port,
                            timeouts=timeouts or Timeouts(settings.connect_timeout, settings.read_timeout,
                                                          settings.read_timeout),
                            secrets=creds.secrets)

    def run() -> float:
        started = time.monotonic()
        donor_end = seed.SeedEndpoint(donor.host, creds.operator, donor.port)
        if isinstance(dialect, MysqlDialect):
            with session(donor, creds.operator) as donor_session:
                seed.prepare_clone_donor(donor_session, dialect)
            with session(target, creds.operator, seed_timeouts) as target_session:
                seed.clone(target_session, dialect, donor_end)
            return time.monotonic() - started  # it restarts; later passes attach it
        with session(target, creds.operator) as target_session:
            dropped = seed.wipe(target_session, dialect)
        log.info("seed of instance %s: wiped (%d databases dropped)", action.ordinal, len(dropped))
        with session(donor, creds.operator) as donor_session:
            history = seed.donor_binlog_state(donor_session)
        seed.stream_dump(donor_end, seed.SeedEndpoint(target.host, creds.operator, target.port),
                         settings.seed_timeout)
        with session(target, creds.operator) as target_session:
            seed.restore_binlog_state(target_session, history)
        with session(target, creds.operator) as target_session:
            actions.configure_replica(
                target_session, dialect, source_host=source.host, source_port=source.port,
                replication=creds.replication, semi_sync=semi_sync,
            )
        return time.monotonic() - started

    return run


def _seed_outcome_event(work: _Pass, outcome: SeedOutcome) -> None:
    if outcome.error:
        work.problems.append(Problem("SeedFailed", f"instance {outcome.ordinal}: {outcome.description} "
                                                   f"failed: {outcome.error}", outcome.ordinal))
        work.event("Warning", "SeedFailed",
                   f"instance {outcome.ordinal}: {outcome.description} failed: {outcome.error}")
        return
    work.event("Normal", "InstanceSeeded",
               f"instance {outcome.ordinal}: {outcome.description} done in {outcome.seconds:.1f}s")
    if work.flavor is Flavor.MARIADB:  # MySQL restarts after a clone; a later pass attaches it
        work.event("Normal", "ReplicaAttached", f"instance {outcome.ordinal} replicates (seeded)")


def _apply_live_config(
    work: _Pass, observed: Mapping[int, InstanceObservation], wanted: Mapping[str, str]
) -> None:
    def apply(ordinal: int) -> str:
        try:
            with work.session(ordinal) as session:
                changed = variables.apply_live(session, work.dialect, wanted)
        except (MysqlError, ValueError) as error:
            return f"!{error}"
        return ", ".join(changed)

    ordinals = [o for o, obs in observed.items() if obs.reachable and o not in work.seeding]
    for ordinal, outcome in zip(ordinals, _parallel(apply, ordinals), strict=True):
        if outcome.startswith("!"):
            work.problems.append(Problem("ConfigNotApplied", f"instance {ordinal}: {outcome[1:]}", ordinal))
        elif outcome:
            work.event("Normal", "ConfigApplied", f"instance {ordinal}: set {outcome} without a restart")


def _ensure_application(work: _Pass, ordinal: int) -> None:
    """The replication user (unlogged) and the application user/database exist on a new primary (a
    no-op when they were there: an instance never attached, e.g. restored, lacks the first)."""
    try:
        with work.session(ordinal) as session:
            created = ensure_system_users(session, work.dialect, work.credentials)
            created += ensure_application(session, work.dialect, work.credentials)
    except MysqlError as error:
        work.problems.append(Problem("ApplicationUserUnchecked", str(error), ordinal))
        return
    if created:
        work.event("Normal", "UsersCreated", f"instance {ordinal}: created {', '.join(created)}")


def _repoint_all(work: _Pass, primary: int, ordinals: Sequence[int]) -> None:
    def repoint(ordinal: int) -> str:
        try:
            _attach(work, RepairReplica(ordinal, primary, f"new primary {primary}", repoint=True))
            return ""
        except MysqlError as error:
            return f"instance {ordinal}: {error}"

    for failure in _parallel(repoint, list(ordinals)):
        if failure:
            work.problems.append(Problem("RepointFailed", failure))
            work.event("Warning", "RepointFailed", failure)


def _semi_sync_after_promotion(work: _Pass, primary: int) -> None:
    if work.mode is not ReplicationMode.SEMI_SYNC:
        return
    with work.session(primary) as session:
        acknowledged = actions.wait_until(
            lambda: read_semi_sync(session, work.dialect).source_clients > 0,
            work.settings.semi_sync_ack_timeout,
        )
        if acknowledged:
            actions.enable_semi_sync_source(session, work.dialect)
        else:
            work.problems.append(Problem("SemiSyncWaiting", "no replica acknowledges the new primary yet",
                                         primary))


def _failover(work: _Pass, action: Failover, observed: Mapping[int, InstanceObservation]) -> None:
    started = time.monotonic()
    dialect = work.dialect

    def stop_receiving(ordinal: int) -> bool:
        # A half-dead old primary must not collect acknowledgements any more: IO threads first.
        try:
            with work.session(ordinal) as session:
                actions.stop_io_thread(session, dialect)
                return actions.wait_relay_log_applied(session, dialect, work.settings.relay_apply_timeout)
        except MysqlError as error:
            log.warning("failover: instance %s: %s", ordinal, error)
            return False

    _parallel(stop_receiving, list(action.candidates))
    candidates = list(work.observe_all(list(action.candidates)).values())
    choice = choose_new_primary(work.flavor, candidates, work.previous.primary_gtid)
    work.problems.extend(choice.problems)
    if choice.ordinal is None:
        # Resume only what we stopped: a replica stopped by someone else stays as it was.
        for ordinal in (o for o in action.candidates if observed[o].io_running):
            try:
                with work.session(ordinal) as session:
                    actions.start_replica(session, dialect)
            except MysqlError:
                pass
        why = "; ".join(p.message for p in choice.problems) or "no candidate"
        work.problems.append(Problem("FailoverBlocked", f"{action.reason}; not promoting: {why}"))
        return
    new = choice.ordinal
    with work.session(new) as session:
        actions.promote(session, dialect)
    seconds = time.monotonic() - started
    work.primary = new
    _repoint_all(work, new, [o for o in action.candidates if o != new])
    _ensure_application(work, new)
    _semi_sync_after_promotion(work, new)
    work.transition = TransitionRecord("failover", work.now, action.failed, new, action.reason,
                                       round(seconds, 3))
    work.event("Warning", "FailoverCompleted",
               f"instance {new} promoted (was {action.failed}): {action.reason}; "
               f"writable after {seconds:.2f}s")


def _switchover(work: _Pass, action: Switchover, observed: Mapping[int, InstanceObservation]) -> None:
    started = time.monotonic()
    dialect = work.dialect
    source, target = action.source, action.target
    with work.session(source) as session:
        actions.fence(session, dialect)
        history = actions.executed_gtids(session, dialect)
    with work.session(target) as session:
        caught_up = actions.wait_for_gtids(session, dialect, history, work.settings.catchup_timeout)
        # A client killed by the fence may still have been committing: promote only once the old
        # primary's history stopped moving and the target holds all of it.
        for _ in range(20):
            if not caught_up:
                break
            time.sleep(0.1)
            with work.session(source) as old:
                latest = actions.executed_gtids(old, dialect)
            if latest == history:
                break
            history = latest
            caught_up = actions.wait_for_gtids(session, dialect, history, work.settings.catchup_timeout)
        if not caught_up:
            with work.session(source) as old:
                actions.unfence(old, dialect)
            message = (f"instance {target} did not catch up with {source} within "
                       f"{work.settings.catchup_timeout:.0f}s; {source} stays primary")
            work.problems.append(Problem("SwitchoverTimedOut", message, target))
            work.event("Warning", "SwitchoverFailed", message)
            return
        actions.promote(session, dialect)
    seconds = time.monotonic() - started
    work.primary = target
    others = [o for o in work.endpoints if o != target and observed[o].reachable]
    _repoint_all(work, target, others)
    _semi_sync_after_promotion(work, target)
    work.transition = TransitionRecord("switchover", work.now, source, target, "requested", round(seconds, 3))
    work.event("Normal", "SwitchoverCompleted",
               f"instance {target} is the primary (was {source}); writable after {seconds:.2f}s")


# Reporting ------------------------------------------------------------------------------------------


def _report(
    work: _Pass, plan: Plan, observed: Mapping[int, InstanceObservation], since: float | None
) -> TopologyResult:
    primary = work.primary
    primary_host = work.endpoints[primary].host if primary is not None else None
    statuses: list[InstanceStatus] = []
    for ordinal in sorted(work.endpoints):
        o = observed[ordinal]
        follows = o.replica_configured and o.source_host == primary_host
        if ordinal == primary:
            role, ready, message = Role.PRIMARY, o.writable, "" if o.writable else (o.error or "not writable")
        elif follows:
            lag_ok = o.seconds_behind is not None and o.seconds_behind <= work.settings.lag_threshold
            role = Role.REPLICA
            ready = o.replicating and lag_ok
            message = "" if ready else (o.last_sql_error or o.last_io_error or
                                        ("lagging" if o.replicating else "not replicating"))
        else:
            role, ready, message = Role.NONE, False, o.error or "not replicating from the primary"
        if ordinal in work.seeding:
            role, ready, message = Role.NONE, False, work.seeding[ordinal]
        statuses.append(InstanceStatus(ordinal, work.endpoints[ordinal].pod_name, role, ready and o.reachable,
                                       o.reachable, gtid.position(work.flavor, o.gtid_executed)
                                       if o.reachable else "", o.seconds_behind, message))
    problems = [*plan.problems, *work.problems]
    conditions = _conditions(statuses, problems, primary)
    keys = tuple(sorted({f"{p.reason}/{p.ordinal}" for p in problems}))
    for problem in problems:
        if f"{problem.reason}/{problem.ordinal}" not in work.previous.problems and problem.reason not in {
            "ActionFailed", "RepointFailed", "SemiSyncWaiting"
        }:
            work.event("Warning", problem.reason, problem.message)
    primary_now = observed.get(primary) if primary is not None else None
    primary_reachable = primary_now is not None and primary_now.reachable
    memory = TopologyMemory(
        primary=primary,
        primary_gtid=primary_now.gtid_executed if primary_now is not None and primary_reachable
        else work.previous.primary_gtid,
        primary_unreachable_since=None if primary_reachable or primary != work.previous.primary else since,
        problems=keys,
    )
    return TopologyResult(
        primary=primary,
        instances=tuple(statuses),
        conditions=conditions,
        events=tuple(work.events),
        transition=work.transition,
        memory=memory,
        actions=tuple(work.done),
        problems=tuple(problems),
    )


def _conditions(
    statuses: list[InstanceStatus], problems: list[Problem], primary: int | None
) -> tuple[ConditionFact, ...]:
    replicas = [s for s in statuses if s.ordinal != primary]
    all_ready = primary is not None and all(s.ready for s in statuses)
    not_ready = ", ".join(f"{s.pod_name} ({s.message})" for s in statuses if not s.ready)
    ready = ConditionFact(
        "Ready", all_ready,
        "AllInstancesReady" if all_ready else ("NoPrimary" if primary is None else "InstancesNotReady"),
        "primary and every replica ready" if all_ready else f"not ready: {not_ready}" if not_ready
        else "no primary",
    )
    replicating_ok = primary is not None and all(s.role is Role.REPLICA and s.reachable for s in replicas)
    replicating = ConditionFact(
        "Replicating", replicating_ok,
        ("SingleInstance" if not replicas else "AllReplicasReplicating") if replicating_ok
        else "ReplicasNotReplicating",
        "" if replicating_ok else ", ".join(s.pod_name for s in replicas if s.role is not Role.REPLICA)
        or "no primary",
    )
    degraded_problems = [p for p in problems if p.reason != "SemiSyncWaiting"]
    degraded_flag = bool(degraded_problems) or not all_ready
    degraded = ConditionFact(
        "Degraded", degraded_flag,
        degraded_problems[0].reason if degraded_problems else ("InstancesNotReady" if degraded_flag
                                                               else "Healthy"),
        "; ".join(p.message for p in degraded_problems) if degraded_problems else not_ready,
    )
    return ready, replicating, degraded
