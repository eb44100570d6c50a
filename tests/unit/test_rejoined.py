"""A deposed primary counts as rejoined when it holds nothing but the primary's history, even while
clients write: it is read after the primary in a pass, so it may already hold newer transactions
the primary wrote (a race that kept it deposed, out of the failover candidates, for as long as
clients wrote: the next failover then waited for it forever in semi-sync)."""

from __future__ import annotations

from mysql_operator.conventions import Flavor
from mysql_operator.mysql.observe import InstanceObservation
from mysql_operator.topology.memory import nothing_beyond_the_primary

A, B, C = ("aaaaaaaa-0000-0000-0000-000000000001", "bbbbbbbb-0000-0000-0000-000000000002",
           "cccccccc-0000-0000-0000-000000000003")


def deposed(gtids: str, server_id: int = 10, uuid: str = "") -> InstanceObservation:
    return InstanceObservation(ordinal=0, host="127.0.0.1", reachable=True, server_id=server_id,
                               server_uuid=uuid, read_only=True, gtid_executed=gtids)


def test_mysql_replica_already_holding_the_primarys_newer_writes_holds_nothing_beyond_it() -> None:
    primary_set = f"{A}:1-100,{B}:1-50"
    assert nothing_beyond_the_primary(Flavor.MYSQL, primary_set, B, deposed(f"{A}:1-100,{B}:1-57", uuid=A))
    assert nothing_beyond_the_primary(Flavor.MYSQL, primary_set, B, deposed(f"{A}:1-100,{B}:1-40", uuid=A))


def test_mysql_own_or_a_third_servers_transactions_the_primary_lacks_are_beyond_it() -> None:
    primary_set = f"{A}:1-100,{B}:1-50"
    beyond = nothing_beyond_the_primary
    assert not beyond(Flavor.MYSQL, primary_set, B, deposed(f"{A}:1-101,{B}:1-50", uuid=A))
    assert not beyond(Flavor.MYSQL, primary_set, B, deposed(f"{A}:1-100,{B}:1-50,{C}:1", uuid=A))
    assert not beyond(Flavor.MYSQL, primary_set, "", deposed(f"{A}:1-100,{B}:1-51", uuid=A))


def test_mariadb_the_same_by_server_id() -> None:
    assert nothing_beyond_the_primary(Flavor.MARIADB, "0-11-50", "11", deposed("0-11-57"))
    assert nothing_beyond_the_primary(Flavor.MARIADB, "0-11-50", "11", deposed("0-11-50"))
    assert not nothing_beyond_the_primary(Flavor.MARIADB, "0-11-50", "11", deposed("0-10-51"))
