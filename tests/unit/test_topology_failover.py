"""The defects of issue 9, each named in a test of the pure decisions (MariaDB GTIDs; server_id =
1<ordinal>), plus the invariants of topology.decide's docstring that they break."""

from __future__ import annotations

from typing import Any

import pytest

from mysql_operator.conventions import Role
from mysql_operator.handlers.topology import desired_role_labels, role_label_changes
from mysql_operator.mysql import actions
from mysql_operator.mysql.dialect import MariadbDialect, MysqlDialect, SemiSyncState
from mysql_operator.mysql.observe import unreachable
from mysql_operator.mysql.session import InstanceUnreachable, SqlError, Statement
from mysql_operator.topology.decide import (
    ClusterView,
    Deposed,
    Failover,
    Fence,
    Operation,
    Promote,
    ReplicationMode,
    Seed,
    State,
    Switchover,
    choose_new_primary,
    decide,
    discarded_relay_logs,
    resolve_operation,
    state_of,
)
from mysql_operator.topology.memory import TopologyMemory
from mysql_operator.topology.report import InstanceStatus, TopologyResult, primary_status
from tests.unit.test_topology_decide import MARIA, MYSQL, down, idle, primary, reasons, replica, view

SEMI = ReplicationMode.SEMI_SYNC


def busy(ordinal: int) -> Any:
    return unreachable(ordinal, f"10.0.0.{ordinal + 1}", SqlError("(1040) Too many connections", 1040))


# Defect 1: a lagging replica can win ------------------------------------------------------------------


def test_defect1_lagging_replica_never_wins() -> None:
    # 2 received up to 12 but applied only 9; 1 applied 10. 1 must not win: the failover waits for 2.
    behind = replica(1, gtids="0-10-10")
    applying = replica(2, gtids="0-10-9", received_gtids="0-10-12", relay_log_applied=False)
    choice = choose_new_primary(MARIA, [behind, applying])
    assert choice.ordinal is None and choice.waiting
    assert "RelayLogNotApplied" in [p.reason for p in choice.problems]
    # Once 2 applied its relay log, it wins.
    done = replica(2, gtids="0-10-12", received_gtids="0-10-12")
    assert choose_new_primary(MARIA, [behind, done]).ordinal == 2


def test_defect1_a_follower_whose_relay_log_would_be_discarded_is_reported() -> None:
    winner = replica(1, gtids="0-10-10")
    follower = replica(2, gtids="0-10-9", received_gtids="0-10-12", relay_log_applied=False)
    problems = discarded_relay_logs(MARIA, winner, [follower])
    assert [(p.reason, p.ordinal) for p in problems] == [("RelayLogDiscarded", 2)]
    assert discarded_relay_logs(MARIA, replica(1, gtids="0-10-12"), [follower]) == ()


# Defect 2: a returning primary made writable without checking its history -----------------------------


def test_defect2_primary_back_without_its_history_is_never_made_writable() -> None:
    plan = decide(view(idle(0, "0-10-3"), down(1), down(2), last_primary=0, last_primary_gtid="0-10-10"))
    assert not any(isinstance(a, Promote) for a in plan.actions)
    assert "PrimaryLostHistory" in reasons(plan)


def test_defect2_primary_back_empty_fails_over_to_the_replica_holding_the_data() -> None:
    plan = decide(view(idle(0, ""), replica(1, gtids="0-10-10"), replica(2, gtids="0-10-10"),
                       last_primary=0, last_primary_gtid="0-10-10", auto_reseed=True))
    assert not any(isinstance(a, Promote | Seed) for a in plan.actions)
    assert [type(a) for a in plan.actions] == [Failover]


def test_defect2_primary_back_writable_without_its_history_is_fenced() -> None:
    plan = decide(view(primary(0, ""), replica(1, gtids="0-10-10"), last_primary=0,
                       last_primary_gtid="0-10-10", auto_reseed=True))
    assert isinstance(plan.actions[0], Fence) and plan.actions[0].ordinal == 0
    assert not any(isinstance(a, Seed) for a in plan.actions)


# Defect 3: semi-sync not lossless end to end ----------------------------------------------------------


def test_defect3_semi_sync_failover_waits_for_every_acknowledging_replica() -> None:
    plan = decide(view(down(0), replica(1), down(2), last_primary=0, primary_unreachable_for=30.0,
                       replication_mode=SEMI, acknowledgers=frozenset({1, 2})))
    assert plan.actions == () and "FailoverNeedsQuorum" in reasons(plan)


def test_defect3_allow_data_loss_fails_over_without_every_acknowledger() -> None:
    plan = decide(view(down(0), replica(1), down(2), last_primary=0, primary_unreachable_for=30.0,
                       replication_mode=SEMI, acknowledgers=frozenset({1, 2}), allow_data_loss=True))
    assert plan.actions == (Failover(0, (1,), "primary 0 unreachable for 30.0s", lossless=False),)


def test_defect3_semi_sync_failover_with_every_acknowledger_is_lossless() -> None:
    plan = decide(view(down(0), replica(1), replica(2), last_primary=0, primary_unreachable_for=30.0,
                       replication_mode=SEMI, acknowledgers=frozenset({1, 2})))
    assert plan.actions == (Failover(0, (1, 2), "primary 0 unreachable for 30.0s", lossless=True),)


class RecordingSession:
    """Records statements (and their arguments); answers the processlist query with `clients` and
    the users query with `users`."""

    def __init__(self, clients: tuple[int, ...] = (), users: tuple[tuple[str, str], ...] = ()) -> None:
        self.sql: list[str] = []
        self.args: list[tuple[Any, ...]] = []
        self.clients = clients
        self.users = users

    def execute(self, *statements: Statement) -> None:
        self.sql.extend(s.sql for s in statements)
        self.args.extend(tuple(s.args) for s in statements)

    def query(self, statement: Statement) -> list[dict[str, Any]]:
        self.sql.append(statement.sql)
        self.args.append(tuple(statement.args))
        if "PROCESSLIST" in statement.sql:
            clients, self.clients = self.clients, ()
            return [{"id": i} for i in clients]
        if "mysql.user" in statement.sql:
            return [{"user": user, "host": host} for user, host in self.users]
        return []

    def query_one(self, statement: Statement) -> dict[str, Any] | None:
        rows = self.query(statement)
        return rows[0] if rows else None


@pytest.mark.parametrize("dialect", [MariadbDialect(), MysqlDialect()])
def test_defect3_promotion_turns_semi_sync_on_before_the_first_write(dialect: Any) -> None:
    session = RecordingSession()
    actions.promote(session, dialect, semi_sync=True)  # type: ignore[arg-type]
    enabled = max(i for i, sql in enumerate(session.sql) if "semi_sync" in sql and "enabled=ON" in sql)
    writable = min(i for i, sql in enumerate(session.sql) if "read_only=OFF" in sql)
    assert enabled < writable


def test_defect3_semi_sync_primary_without_an_acknowledging_replica_is_not_ready() -> None:
    lonely = primary(0, semi_sync=SemiSyncState(source_enabled=True, source_clients=0))
    assert primary_status(lonely, SEMI) == (False, "no replica acknowledges: writes wait")
    acked = primary(0, semi_sync=SemiSyncState(source_enabled=True, source_clients=1))
    assert primary_status(acked, SEMI) == (True, "")


def test_defect3_blocked_failover_leaves_the_replicas_alone() -> None:
    # No RepairReplica/Start toward the presumed-dead primary while the failover is blocked.
    plan = decide(view(down(0), replica(1, io_running=False), down(2), last_primary=0,
                       primary_unreachable_for=30.0, replication_mode=SEMI, acknowledgers=frozenset({1, 2})))
    assert plan.actions == ()


# Defect 4: nothing fences the old primary --------------------------------------------------------------


def test_defect4_busy_primary_never_fails_over() -> None:
    plan = decide(view(busy(0), replica(1), replica(2), last_primary=0, primary_unreachable_for=300.0))
    assert plan.primary == 0 and plan.actions == ()
    assert "PrimaryBusy" in reasons(plan)


def test_defect4_sql_errors_are_busy_connection_failures_are_unreachable() -> None:
    assert busy(0).busy and busy(0).alive
    gone = unreachable(0, "127.0.0.1", InstanceUnreachable("(2003) Can't connect"))
    assert not gone.busy and not gone.alive
    slow = unreachable(0, "127.0.0.1", InstanceUnreachable("(2013) Lost connection"), logged_in=True)
    assert slow.busy


def test_defect4_one_missed_probe_keeps_the_primary_label() -> None:
    plan = decide(view(down(0), replica(1), last_primary=0, primary_unreachable_for=1.0, grace_period=10.0))
    assert plan.primary == 0
    result = TopologyResult(
        primary=plan.primary,
        instances=(InstanceStatus(0, "db-0", Role.PRIMARY, False, False, "", None),
                   InstanceStatus(1, "db-1", Role.REPLICA, True, True, "", 0)),
        conditions=(), events=(), transition=None, memory=TopologyMemory(),
    )
    assert desired_role_labels(result) == {"db-0": "primary", "db-1": "replica"}
    fenced = TopologyResult(**{**result.__dict__, "pods_fenced": (0,)})
    assert desired_role_labels(fenced)["db-0"] == "none"


def test_defect4_resumed_old_primary_is_fenced_never_the_new_one() -> None:
    # 0 stalled, 1 was promoted and took writes; 0 resumes writable with one unacknowledged write.
    old = primary(0, "0-10-21")
    new = primary(1, "0-10-20,0-11-500")
    plan = decide(view(old, new, replica(2, source=1, gtids="0-10-20,0-11-500"), last_primary=1,
                       last_primary_gtid="0-10-20,0-11-500", deposed=(Deposed(0, lossless=True),),
                       replication_mode=SEMI))
    assert plan.primary == 1
    assert plan.actions[0] == Fence(0, "deposed primary 0 was writable; 1 is the primary")
    assert not any(isinstance(a, Fence) and a.ordinal == 1 for a in plan.actions)


def test_defect4_healed_partition_needs_no_human() -> None:
    # Both writable after a heal, diverged: memory keeps 1, fences 0, and 0 is rebuilt (semi-sync,
    # lossless failover: its extra write was never acknowledged).
    plan = decide(view(primary(0, "0-10-21"), primary(1, "0-10-20,0-11-30"), last_primary=1,
                       deposed=(Deposed(0, lossless=True),), replication_mode=SEMI))
    assert plan.primary == 1
    assert [type(a) for a in plan.actions][:2] == [Fence, Seed]


# Defect 5: the fence hangs in semi-sync mode ------------------------------------------------------------


@pytest.mark.parametrize("dialect", [MariadbDialect(), MysqlDialect()])
def test_defect5_fence_ends_sessions_first_with_a_bounded_lock_wait(dialect: Any) -> None:
    session = RecordingSession(clients=(7, 8))
    killed = actions.fence(session, dialect)  # type: ignore[arg-type]
    assert killed == 2
    assert session.sql[0].startswith("SET SESSION lock_wait_timeout")
    kills = [i for i, sql in enumerate(session.sql) if sql.startswith("KILL")]
    read_only = next(i for i, sql in enumerate(session.sql) if "read_only=ON" in sql)
    assert kills and max(kills) < read_only
    assert not any("semi_sync" in sql for sql in session.sql)  # never acknowledges unreplicated writes


# Defect 6: one errant replica plus a primary restart leaves no primary -----------------------------------


def test_defect6_errant_replica_and_primary_restart_keep_the_restarted_primary() -> None:
    plan = decide(view(idle(0, "0-10-10"), replica(1, gtids="0-10-10,0-11-1"), replica(2, gtids="0-10-10"),
                       last_primary=0, last_primary_gtid="0-10-10"))
    assert plan.actions == (Promote(0, "the primary was read-only"),)


def test_defect6_errant_replica_and_lost_primary_promote_the_clean_one() -> None:
    choice = choose_new_primary(MARIA, [replica(1, gtids="0-10-10,0-11-1"), replica(2, gtids="0-10-10")],
                                "0-10-10")
    assert choice.ordinal == 2


# Defect 7: two pods with role=primary ---------------------------------------------------------------------


def test_defect7_never_two_primary_labels() -> None:
    # db-0 is terminating (absent from wanted) and still labelled primary; db-1 becomes primary.
    demotions, promotions = role_label_changes(
        {"db-0": "primary", "db-1": "replica", "db-2": "replica"},
        {"db-1": "primary", "db-2": "replica"},
    )
    assert ("db-0", "none") in demotions
    assert promotions == [("db-1", "primary")]
    # Two wanted primaries (never from decide) promote nobody.
    assert role_label_changes({}, {"db-0": "primary", "db-1": "primary"})[1] == []


def test_defect7_a_terminating_primary_is_switched_over_from_not_kept() -> None:
    plan = decide(view(primary(0), replica(1), replica(2), last_primary=0, terminating=frozenset({0})))
    assert plan.actions == (Switchover(0, 1, (2, 0)),)


def test_defect7_a_terminating_replica_is_never_a_failover_candidate() -> None:
    plan = decide(view(down(0), replica(1), replica(2), last_primary=0, primary_unreachable_for=30.0,
                       terminating=frozenset({1})))
    assert plan.actions == (Failover(0, (2,), "primary 0 unreachable for 30.0s"),)


def test_defect7_failover_blocks_when_the_old_primary_cannot_be_fenced() -> None:
    # The decision names the old primary to fence before promoting (the executor fences it first and
    # does not promote when neither SQL nor the pod fence worked).
    plan = decide(view(down(0), replica(1), last_primary=0, primary_unreachable_for=30.0))
    assert isinstance(plan.actions[0], Failover) and plan.actions[0].failed == 0


# Defect 8: switchover ignores lag -------------------------------------------------------------------------


def test_defect8_switchover_waits_for_a_lagging_target_without_fencing() -> None:
    plan = decide(view(primary(0), replica(1, seconds_behind=20), last_primary=0, switchover_to=1))
    assert plan.primary == 0
    assert not any(isinstance(a, Switchover | Fence) for a in plan.actions)
    assert "SwitchoverWaitingForCatchUp" in reasons(plan)


def test_defect8_switchover_never_repoints_an_instance_being_seeded() -> None:
    plan = decide(view(primary(0), replica(1), idle(2), last_primary=0, switchover_to=1,
                       seeding=frozenset({2})))
    assert plan.actions == (Switchover(0, 1, (0,)),)


# Defect 9: MariaDB fencing and the application grant --------------------------------------------------------


def test_defect9_application_grant_escapes_the_underscore_wildcard() -> None:
    statement = MariadbDialect().grant_application("app", "shop_db")
    assert "`shop\\_db`.*" in statement.sql


def test_defect9_mariadb_fence_takes_roots_read_only_bypass_unlogged_before_ending_sessions() -> None:
    # Root is created on localhost only; an instance initialised earlier may also have root@'%'.
    users = (("root", "localhost"), ("root", "%"), ("mysqlop_admin", "%"), ("app", "%"))
    session = RecordingSession(clients=(7,), users=users)
    actions.fence(session, MariadbDialect())  # type: ignore[arg-type]
    revokes = [i for i, sql in enumerate(session.sql) if sql == "REVOKE READ_ONLY ADMIN ON *.* FROM %s@%s"]
    assert sorted(session.args[i] for i in revokes) == [("root", "%"), ("root", "localhost")]
    assert session.sql[revokes[0] - 1] == "SET SESSION sql_log_bin=0"
    assert max(revokes) < min(i for i, sql in enumerate(session.sql) if sql.startswith("KILL"))
    promoted = RecordingSession(users=(("root", "localhost"),))
    actions.promote(promoted, MariadbDialect())  # type: ignore[arg-type]
    grants = [i for i, sql in enumerate(promoted.sql) if sql == "GRANT READ_ONLY ADMIN ON *.* TO %s@%s"]
    assert [promoted.args[i] for i in grants] == [("root", "localhost")]


def test_mysql_fence_needs_no_bypass_change() -> None:
    session = RecordingSession(users=(("root", "localhost"),))
    actions.fence(session, MysqlDialect())  # type: ignore[arg-type]
    assert not any("READ_ONLY ADMIN" in sql or "mysql.user" in sql for sql in session.sql)


def test_defect9_mariadb_fence_ends_root_sessions_too() -> None:
    query = MariadbDialect().client_connections_query(actions._SPARED_USERS)
    assert "root" not in query.args  # root holds READ_ONLY ADMIN: its sessions are ended


# Rejoin of a deposed primary ----------------------------------------------------------------------------


def _returning(**extra: Any) -> ClusterView:
    history = "0-10-20,0-11-30"
    return view(idle(0, "0-10-21"), primary(1, history), replica(2, source=1, gtids=history),
                last_primary=1, last_primary_gtid=history, seed_new_instances=True, **extra)


def test_deposed_primary_with_unacknowledged_writes_rejoins_after_recording_them() -> None:
    plan = decide(_returning(deposed=(Deposed(0, lossless=True),), replication_mode=SEMI))
    seed = next(a for a in plan.actions if isinstance(a, Seed))
    assert (seed.ordinal, seed.rebuild, seed.discarded, seed.discarded_count) == (0, True, "0-10-21", 1)


def test_deposed_primary_after_a_lossy_failover_is_reported_not_rebuilt() -> None:
    plan = decide(_returning(deposed=(Deposed(0, lossless=False),), replication_mode=SEMI, auto_reseed=True))
    assert not any(isinstance(a, Seed) for a in plan.actions)
    assert "DeposedPrimaryDiverged" in reasons(plan)


def test_deposed_primary_in_async_mode_rejoins_only_with_auto_reseed() -> None:
    assert "DeposedPrimaryDiverged" in reasons(decide(_returning(deposed=(Deposed(0),))))
    plan = decide(_returning(deposed=(Deposed(0),), auto_reseed=True))
    seed = next(a for a in plan.actions if isinstance(a, Seed))
    assert seed.discarded_count == 1


# Operation in progress --------------------------------------------------------------------------------------


def test_interrupted_failover_is_completed_not_undone() -> None:
    # The operator died after promoting 1 and before recording it; 0 resumed writable.
    before = view(primary(0, "0-10-21"), primary(1, "0-10-20,0-11-5"), last_primary=0,
                  operation=Operation("failover", 0, 1, lossless=True))
    resolved = resolve_operation(before)
    assert resolved.last_primary == 1 and resolved.deposed == (Deposed(0, True),)
    plan = decide(resolved)
    assert plan.primary == 1 and plan.actions[0].ordinal == 0  # type: ignore[union-attr]


def test_memory_round_trips_through_status() -> None:
    memory = TopologyMemory(primary=1, primary_gtid="0-11-5", acknowledgers=(2,),
                            deposed=(Deposed(0, True),), operation=Operation("failover", 0, 1, True))
    assert TopologyMemory.from_dict(memory.to_dict()) == memory


# The state machine ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cluster", "state"),
    [
        (view(idle(0), idle(1)), State.BOOTSTRAPPING),
        (view(primary(0), replica(1), last_primary=0), State.STEADY),
        (view(busy(0), replica(1), last_primary=0, primary_unreachable_for=60.0), State.PRIMARY_BUSY),
        (view(down(0), replica(1), last_primary=0, primary_unreachable_for=1.0), State.PRIMARY_UNREACHABLE),
        (view(down(0), replica(1), last_primary=0, primary_unreachable_for=60.0), State.FAILING_OVER),
        (view(down(0), replica(1), down(2), last_primary=0, primary_unreachable_for=60.0,
              replication_mode=SEMI, acknowledgers=frozenset({1, 2})), State.FAILOVER_BLOCKED),
        (view(primary(0), primary(1), last_primary=0), State.FENCING),
        (view(primary(0), replica(1), last_primary=0, switchover_to=1), State.SWITCHING_OVER),
        (view(primary(0), replica(1, seconds_behind=9), last_primary=0, switchover_to=1),
         State.SWITCHOVER_WAITING),
        (_returning(deposed=(Deposed(0, lossless=True),), replication_mode=SEMI), State.REJOINING),
    ],
)
def test_each_decision_names_its_state(cluster: ClusterView, state: State) -> None:
    assert state_of(decide(cluster)) is state


def test_defect3_a_departed_acknowledger_counts_until_the_others_hold_what_it_could_have_acked() -> None:
    from mysql_operator.topology.memory import forget_departed

    acks = frozenset({1, 2})
    # Pass 1: 2 is missing: kept, not bounded yet (it may have acknowledged after the primary was read).
    first = forget_departed(MARIA, acks, {1}, {}, "0-10-10", {1: "0-10-9"})
    assert first == {2: ""}
    # Pass 2: bounded by the primary's set now.
    second = forget_departed(MARIA, acks, {1}, first, "0-10-12", {1: "0-10-11"})
    assert second == {2: "0-10-12"}
    # 1 has not received all of it yet: 2 still counts; once it has, 2 is forgotten.
    assert forget_departed(MARIA, acks, {1}, second, "0-10-20", {1: "0-10-11"}) == {2: "0-10-12"}
    assert forget_departed(MARIA, acks, {1}, second, "0-10-20", {1: "0-10-13"}) == {}
    # Back attached: nothing departed.
    assert forget_departed(MARIA, acks, {1, 2}, second, "0-10-20", {1: "0-10-20", 2: "0-10-20"}) == {}


# A candidate that never replicated from the primary -------------------------------------------------------


def test_an_instance_holding_none_of_the_primary_s_history_is_never_promoted() -> None:
    # 1 and 2 were never seeded (a new cluster whose primary died before they attached, or wiped):
    # promoting either would start the data over. The failover blocks, in any mode.
    choice = choose_new_primary(MARIA, [idle(1, ""), idle(2, "")], "0-10-40")
    assert choice.ordinal is None and not choice.waiting
    assert [(p.reason, p.ordinal) for p in choice.problems] == [
        ("NeverReplicated", 1), ("NeverReplicated", 2)]
    # an instance's own writes (another domain) are no history either (and errant)
    choice = choose_new_primary(MARIA, [idle(1, "1-11-3")], "0-10-40")
    assert choice.ordinal is None and "NeverReplicated" in [p.reason for p in choice.problems]


def test_a_seeded_replica_is_promoted_beside_one_that_never_replicated() -> None:
    # 1 is behind (async: the documented loss window) but holds the history; 2 holds nothing
    choice = choose_new_primary(MARIA, [replica(1, gtids="0-10-30"), idle(2, "")], "0-10-40")
    assert choice.ordinal == 1
    assert [(p.reason, p.ordinal) for p in choice.problems] == [("NeverReplicated", 2)]


def test_never_replicated_mysql_by_server_uuid() -> None:
    source, fresh = "3e11fa47-71ca-11e1-9e33-c80aa9429562", "5b7c8d9e-71ca-11e1-9e33-c80aa9429599"
    known = f"{source}:1-100"
    blocked = choose_new_primary(MYSQL, [idle(1, f"{fresh}:1-2")], known)
    assert blocked.ordinal is None and [p.reason for p in blocked.problems] == ["NeverReplicated"]
    assert choose_new_primary(MYSQL, [idle(1, f"{source}:1-5")], known).ordinal == 1


def test_without_a_recorded_history_an_empty_instance_may_still_be_promoted() -> None:
    # nothing known of the primary (no write was ever seen): no verdict, the usual rules apply
    assert choose_new_primary(MARIA, [idle(1, ""), idle(2, "")], "").ordinal == 1
