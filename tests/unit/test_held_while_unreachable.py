"""Semi-sync: what replicas held while the primary was unreachable stays a lower bound of what may
have been acknowledged, even if the replica holding it loses its relay log (MariaDB discards it when
both replication threads start again): a failover to a winner that lacks it would lose acknowledged
writes (CI: a relay log discarded during the outage, 220 acknowledged writes lost)."""

from __future__ import annotations

from mysql_operator.conventions import Flavor
from mysql_operator.mysql.dialect import dialect_for
from mysql_operator.mysql.observe import InstanceObservation
from mysql_operator.mysql.users import ClusterCredentials
from mysql_operator.topology.candidates import gone_since_held, held_from_others
from mysql_operator.topology.context import InstanceEndpoint, Pass, TopologySettings
from mysql_operator.topology.memory import TopologyMemory, remember
from mysql_operator.topology.model import ClusterView, ReplicationMode

A, B = "aaaaaaaa-0000-0000-0000-000000000001", "bbbbbbbb-0000-0000-0000-000000000002"


def replica(ordinal: int, executed: str, received: str = "", server_id: int = 0, uuid: str = "",
            reachable: bool = True) -> InstanceObservation:
    return InstanceObservation(ordinal=ordinal, host=f"127.0.0.{ordinal + 2}", reachable=reachable,
                               server_id=server_id or 10 + ordinal, server_uuid=uuid, read_only=True,
                               gtid_executed=executed, received_gtids=received or executed,
                               replica_configured=True)


def test_a_replicas_own_writes_are_not_held_for_the_primary() -> None:
    r = replica(1, "0-10-50,0-11-3", "0-10-60,0-11-3", server_id=11)
    assert held_from_others(Flavor.MARIADB, r) == "0-10-60"
    m = replica(1, f"{A}:1-50,{B}:1-3", f"{A}:1-60,{B}:1-3", uuid=B)
    assert held_from_others(Flavor.MYSQL, m) == f"{A}:1-60"


def test_a_winner_lacking_what_was_held_is_named() -> None:
    assert gone_since_held(Flavor.MARIADB, replica(2, "0-10-50"), "0-10-60") == "0-10-60"
    assert gone_since_held(Flavor.MARIADB, replica(2, "0-10-60"), "0-10-60") == ""
    assert gone_since_held(Flavor.MYSQL, replica(2, f"{A}:1-50", uuid=B), f"{A}:1-60") == f"{A}:51-60"
    assert gone_since_held(Flavor.MYSQL, replica(2, f"{A}:1-50", uuid=B), "") == ""


def _pass(flavor: Flavor, mode: ReplicationMode) -> Pass:
    return Pass(endpoints={o: InstanceEndpoint(o, f"db-{o}", f"127.0.0.{o + 2}") for o in range(3)},
                credentials=ClusterCredentials("r", "p", "o"), dialect=dialect_for(flavor), mode=mode,
                settings=TopologySettings(), now=100.0)


def _remember(previous: TopologyMemory, observed: list[InstanceObservation],
              mode: ReplicationMode = ReplicationMode.SEMI_SYNC) -> TopologyMemory:
    view = ClusterView(flavor=Flavor.MARIADB, observations=tuple(observed), last_primary=previous.primary,
                       last_primary_gtid=previous.primary_gtid, replication_mode=mode,
                       held_while_unreachable=previous.held)
    since = 90.0 if not observed[0].reachable else None
    return remember(previous, view, _pass(Flavor.MARIADB, mode), {o.ordinal: o for o in observed}, since, [])


def test_memory_keeps_the_most_held_while_the_primary_is_unreachable_and_forgets_it_when_it_answers() -> None:
    start = TopologyMemory(primary=0, primary_gtid="0-10-40", primary_unreachable_since=90.0)
    dead = replica(0, "", reachable=False)
    first = _remember(start, [dead, replica(1, "0-10-40", "0-10-70"), replica(2, "0-10-55")])
    assert first.held == "0-10-70"
    # Instance 1's relay log is discarded: what it held is still remembered.
    second = _remember(first, [dead, replica(1, "0-10-40"), replica(2, "0-10-55")])
    assert second.held == "0-10-70"
    alive = InstanceObservation(ordinal=0, host="127.0.0.2", reachable=True, server_id=10,
                                gtid_executed="0-10-80")
    back = _remember(second, [alive, replica(1, "0-10-80"), replica(2, "0-10-80")])
    assert back.held == ""
    assert TopologyMemory.from_dict(second.to_dict()) == second


def test_async_mode_keeps_nothing() -> None:
    start = TopologyMemory(primary=0, primary_gtid="0-10-40", primary_unreachable_since=90.0)
    dead = replica(0, "", reachable=False)
    assert _remember(start, [dead, replica(1, "0-10-40", "0-10-70"), replica(2, "0-10-55")],
                     ReplicationMode.ASYNC).held == ""
