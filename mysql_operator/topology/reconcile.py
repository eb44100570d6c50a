"""One reconcile pass over a cluster's replication topology: observe -> decide -> act -> report.

`reconcile_topology` is what the kopf timer calls every few seconds (from a thread: it blocks on
SQL, every wait bounded). All decisions are in `decide` (pure); `execute` acts, `seeding` copies
data, `report` and `memory` turn the outcome into status facts (roles, conditions, events, a
failover/switchover record) plus the memory the caller keeps in status and passes back next time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from mysql_operator.conventions import Flavor
from mysql_operator.mysql import variables
from mysql_operator.mysql.dialect import dialect_for
from mysql_operator.mysql.observe import InstanceObservation
from mysql_operator.mysql.session import MysqlError
from mysql_operator.mysql.users import ClusterCredentials
from mysql_operator.topology.context import (
    EventFact,
    InstanceEndpoint,
    Pass,
    PodFence,
    PrimaryRouter,
    TopologySettings,
    TransitionRecord,
    parallel,
)
from mysql_operator.topology.decide import ClusterView, Problem, ReplicationMode, decide, resolve_operation
from mysql_operator.topology.execute import act
from mysql_operator.topology.memory import TopologyMemory, unreachable_since
from mysql_operator.topology.report import ConditionFact, InstanceStatus, TopologyResult, report
from mysql_operator.topology.seeding import SeedWorkers, seed_outcome_event

__all__ = [
    "ConditionFact",
    "EventFact",
    "InstanceEndpoint",
    "InstanceStatus",
    "TopologyMemory",
    "TopologyResult",
    "TopologySettings",
    "TransitionRecord",
    "reconcile_topology",
]

log = logging.getLogger(__name__)


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
    allow_data_loss: bool = False,
    move_primary_to: int | None = None,
    live_config: Mapping[str, str] | None = None,
    seeds: SeedWorkers | None = None,
    fence_pod: PodFence | None = None,
    route_primary: PrimaryRouter | None = None,
    checkpoint: Callable[[TopologyMemory], None] | None = None,
) -> TopologyResult:
    """Observe every instance, take the next step, and report.

    Day-2 options: `desired_instances` (higher ordinals are being removed: the primary moves off
    them), `seed_new_instances` (an empty instance is seeded from a donor instead of replicating
    from nothing), `auto_reseed` (a replica that cannot replicate is rebuilt), `move_primary_to`
    (a rollout wants the primary there; takes precedence over `switchover_to`), `live_config`
    (dynamic keys set on every instance), `seeds` (run seeds in the background across passes;
    without it a seed runs within the pass).

    Failover options: `allow_data_loss` (semi-sync: fail over without every acknowledging replica),
    `fence_pod(ordinal)` (fence at the Kubernetes level: role label off and pod deleted; called when
    an old primary cannot be fenced over SQL, before any promotion), `checkpoint(memory)` (persist
    the memory with the operation in progress right before a promotion, so a restarted operator
    completes it rather than undoes it).

    `credentials` is the decoded credentials Secret (conventions.KEY_*) or ClusterCredentials.
    `now` is wall-clock seconds (time.time()), used for the grace period and records only.
    Never raises for SQL trouble: failures become problems, conditions and Warning events.
    """
    creds = credentials if isinstance(credentials, ClusterCredentials) else (
        ClusterCredentials.from_secret(credentials)
    )
    settings = settings or TopologySettings()
    work = Pass(
        endpoints={e.ordinal: e for e in instances},
        credentials=creds,
        dialect=dialect_for(Flavor(flavor)),
        mode=ReplicationMode(replication_mode),
        settings=settings,
        now=now,
        seeds=seeds,
        fence_pod=fence_pod,
        route_primary=route_primary,
    )
    if seeds is not None:
        for outcome in seeds.finished():
            seed_outcome_event(work, outcome)
        work.seeding = seeds.running()
    ordinals = sorted(work.endpoints)
    observed = work.observe_all(ordinals)
    since = unreachable_since(previous, observed, now)
    view = resolve_operation(ClusterView(
        flavor=work.flavor,
        observations=tuple(observed[o] for o in ordinals),
        last_primary=previous.primary,
        last_primary_gtid=previous.primary_gtid,
        switchover_to=switchover_to,
        primary_unreachable_for=0.0 if since is None else max(0.0, now - since),
        grace_period=settings.grace_period,
        replication_mode=work.mode,
        desired_instances=desired_instances,
        seed_new_instances=seed_new_instances,
        auto_reseed=auto_reseed,
        seeding=frozenset(work.seeding),
        move_primary_to=move_primary_to,
        deposed=previous.deposed,
        operation=previous.operation,
        acknowledgers=frozenset(previous.acknowledgers),
        held_while_unreachable=previous.held if since is not None else "",
        pods_fenced=frozenset(previous.pods_fenced),
        terminating=frozenset(e.ordinal for e in instances if e.terminating),
        allow_data_loss=allow_data_loss,
        switchover_max_lag=settings.switchover_max_lag,
    ))
    work.view = view
    if checkpoint is not None:
        resolved = replace(previous, primary=view.last_primary, deposed=view.deposed)
        work.checkpoint = lambda w: checkpoint(replace(resolved, operation=w.operation))
    plan = decide(view)
    work.primary = plan.primary
    for action in plan.actions:
        act(work, action, observed)
    if live_config:
        _apply_live_config(work, observed, live_config)
    if plan.actions:
        observed = work.observe_all(ordinals)
    return report(work, plan, view, previous, observed, since)


def _apply_live_config(
    work: Pass, observed: Mapping[int, InstanceObservation], wanted: Mapping[str, str]
) -> None:
    def apply(ordinal: int) -> str:
        try:
            with work.session(ordinal) as session:
                changed = variables.apply_live(session, work.dialect, wanted)
        except (MysqlError, ValueError) as error:
            return f"!{error}"
        return ", ".join(changed)

    ordinals = [o for o, obs in observed.items() if obs.reachable and o not in work.seeding]
    for ordinal, outcome in zip(ordinals, parallel(apply, ordinals), strict=True):
        if outcome.startswith("!"):
            work.problems.append(Problem("ConfigNotApplied", f"instance {ordinal}: {outcome[1:]}", ordinal))
        elif outcome:
            work.event("Normal", "ConfigApplied", f"instance {ordinal}: set {outcome} without a restart")
