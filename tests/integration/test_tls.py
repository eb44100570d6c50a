"""TLS against real servers, both flavors: verified sessions, plaintext refused, replication over TLS
that refuses a source of another CA, and a certificate rotated with a live reload (no restart).

Each flavor gets two servers of its own on 127.<IT_NET>.23.x, started with the certificate files
the operator would mount and require_secure_transport on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pymysql
import pytest

from mysql_operator import conventions as c
from mysql_operator.backup.commands import Instance, defaults_file
from mysql_operator.mysql import actions
from mysql_operator.mysql.dialect import SourceTls, dialect_for
from mysql_operator.mysql.session import InstanceUnreachable, Login, Statement, open_session
from mysql_operator.mysql.users import ClusterCredentials, ensure_system_users
from mysql_operator.tls import issue
from mysql_operator.tls.client import ClientTls
from mysql_operator.tls.ensure import ensure_replication_tls, reload_if_stale
from sandbox import mysql_root
from tests.integration.conftest import CREDENTIALS
from tests.integration.servers import ROOT_PASSWORD, DbServer, _wait, make_server

NET = os.environ.get("IT_NET", "0")
CLUSTER, NAMESPACE = "db", "it"
FLAVORS = ("mariadb", "mysql")


@dataclass
class TlsPair:
    flavor: c.Flavor
    servers: list[DbServer]
    ca: issue.KeyPair
    tls_dir: Path

    def client(self, ordinal: int) -> ClientTls:
        return ClientTls(self.ca.cert_pem, c.pod_domain_name(CLUSTER, NAMESPACE, ordinal))


def write_certificate(tls_dir: Path, ca: issue.KeyPair, lifetime: timedelta) -> issue.KeyPair:
    """What kubelet does for the mounted Secret: the files, replaced in place."""
    pair = issue.issue_server(ca, issue.server_names(CLUSTER, NAMESPACE), issue.utcnow(), lifetime)
    files = {c.KEY_TLS_CA: ca.cert_pem, c.KEY_TLS_CERT: pair.cert_pem, c.KEY_TLS_KEY: pair.key_pem}
    for name, text in files.items():
        (tls_dir / name).write_text(text)
    return pair


@pytest.fixture(scope="module", params=FLAVORS)
def pair(request: pytest.FixtureRequest) -> Iterator[TlsPair]:
    flavor = c.Flavor(request.param)
    if flavor is c.Flavor.MYSQL and not mysql_root.is_built():
        raise AssertionError("the MySQL root is not built (run hack/build-mysql.sh)")
    base = Path(tempfile.mkdtemp(prefix=f"it-tls-{flavor}-"))
    tls_dir = base / "tls"
    tls_dir.mkdir()
    ca = issue.issue_ca(CLUSTER, NAMESPACE, issue.utcnow(), timedelta(days=365))
    write_certificate(tls_dir, ca, timedelta(days=90))
    config = {
        "ssl_ca": str(tls_dir / c.KEY_TLS_CA),
        "ssl_cert": str(tls_dir / c.KEY_TLS_CERT),
        "ssl_key": str(tls_dir / c.KEY_TLS_KEY),
        "require_secure_transport": "ON",
        "performance_schema": "ON",  # the replication session's cipher is read from it
    }
    octet = 23 if flavor is c.Flavor.MARIADB else 24
    servers = [make_server(flavor, o, f"127.{NET}.{octet}.{o + 1}", base / f"s{o}", config) for o in (0, 1)]
    try:
        for server in servers:
            server.start()
        yield TlsPair(flavor, servers, ca, tls_dir)
    finally:
        for server in servers:
            server.kill()
        shutil.rmtree(base, ignore_errors=True)


ROOT = Login(c.ROOT_USER, ROOT_PASSWORD)


def cipher(pair: TlsPair, ordinal: int) -> str:
    with open_session(pair.servers[ordinal].host, ROOT, tls=pair.client(ordinal)) as session:
        row = session.query_one(Statement("SHOW SESSION STATUS LIKE 'Ssl_cipher'")) or {}
    return str(row.get("Value") or "")


def test_operator_session_is_tls_verified_by_ca_and_pod_name(pair: TlsPair) -> None:
    assert cipher(pair, 0)  # dialed by IP, verified as db-0.db.it.svc
    other_ca = issue.issue_ca("other", NAMESPACE, issue.utcnow(), timedelta(days=30))
    host = pair.servers[0].host
    with pytest.raises(InstanceUnreachable, match="certificate verify failed"), \
            open_session(host, ROOT, tls=ClientTls(other_ca.cert_pem)):
        pass
    # The right CA but another name: the pod is not who it claims to be.
    with pytest.raises(InstanceUnreachable, match=r"certificate verify failed"), \
            open_session(host, ROOT, tls=ClientTls(pair.ca.cert_pem, "db-0.other.it.svc")):
        pass


def test_plaintext_client_is_refused_with_require_secure_transport(pair: TlsPair) -> None:
    with pytest.raises(pymysql.err.OperationalError) as refused:
        pymysql.connect(host=pair.servers[0].host, user="root", password=ROOT_PASSWORD, ssl_disabled=True,
                        connect_timeout=3)
    # MySQL: 3159 ER_SECURE_TRANSPORT_REQUIRED; MariaDB 10.11 answers a plain "access denied" (1045).
    assert refused.value.args[0] == (3159 if pair.flavor is c.Flavor.MYSQL else 1045)
    assert cipher(pair, 0)  # the very same login over TLS is let in: only the transport differed


def test_replication_runs_over_tls_and_refuses_a_source_of_another_ca(pair: TlsPair) -> None:
    dialect = dialect_for(pair.flavor)
    creds = ClusterCredentials.from_secret(CREDENTIALS)
    source, replica = pair.servers
    for ordinal, server in enumerate(pair.servers):
        with open_session(server.host, ROOT, tls=pair.client(ordinal)) as session:
            ensure_system_users(session, dialect, creds)
    with open_session(source.host, creds.operator, tls=pair.client(0)) as session:
        actions.promote(session, dialect)
    # A CA file of another cluster: the replica must refuse the source's certificate.
    stranger = issue.issue_ca("other", NAMESPACE, issue.utcnow(), timedelta(days=30))
    stranger_file = pair.tls_dir.parent / "stranger-ca.crt"
    stranger_file.write_text(stranger.cert_pem)
    with open_session(replica.host, creds.operator, tls=pair.client(1)) as session:
        session.execute(dialect.stop_replica)
        session.execute(dialect.change_source(source.host, 3306, creds.replication.user,
                                              creds.replication.password,
                                              SourceTls(str(stranger_file), verify_identity=False)))
        session.execute(dialect.start_replica)

        def io_error() -> str:
            status = dialect.parse_replica_status(session.query_one(dialect.replica_status_query) or {})
            return status.last_io_error if not status.io_running else ""

        _wait(io_error, 30, "the replica to refuse the stranger's CA")
        assert any(word in io_error().lower() for word in ("ssl", "certificate", "tls"))
        # The operator's own configuration: the CA the replica's server was started with.
        actions.configure_replica(session, dialect, source_host=source.host, source_port=3306,
                                  replication=creds.replication, semi_sync=False, tls=True)

        def replicating() -> bool:
            status = dialect.parse_replica_status(session.query_one(dialect.replica_status_query) or {})
            return status.io_running and status.sql_running

        _wait(replicating, 30, "replication over TLS")
        row = session.query_one(dialect.replica_status_query) or {}
        allowed = "Source_SSL_Allowed" if pair.flavor is c.Flavor.MYSQL else "Master_SSL_Allowed"
        ca_key = "Source_SSL_CA_File" if pair.flavor is c.Flavor.MYSQL else "Master_SSL_CA_File"
        assert row[allowed] == "Yes"
        assert row[ca_key] == str(pair.tls_dir / c.KEY_TLS_CA)
    # The source requires secure transport, so a running IO thread is a TLS one; on MySQL the
    # source also shows the replication session's cipher.
    if pair.flavor is c.Flavor.MYSQL:
        with open_session(source.host, ROOT, tls=pair.client(0)) as session:
            row = session.query_one(Statement(
                "SELECT s.VARIABLE_VALUE AS cipher FROM performance_schema.status_by_thread s "
                "JOIN performance_schema.threads t USING (THREAD_ID) "
                "WHERE t.PROCESSLIST_USER = %s AND s.VARIABLE_NAME = 'Ssl_cipher'",
                (creds.replication.user,)))
        assert row is not None and row["cipher"]


def test_a_replica_attached_without_tls_is_moved_onto_tls(pair: TlsPair) -> None:
    dialect = dialect_for(pair.flavor)
    creds = ClusterCredentials.from_secret(CREDENTIALS)
    source, replica = pair.servers
    with open_session(replica.host, creds.operator, tls=pair.client(1)) as session:
        # As attached before TLS was turned on (MariaDB keeps SSL settings across RESET SLAVE ALL).
        session.execute(dialect.stop_replica, dialect.change_source_tls(None))
        actions.configure_replica(session, dialect, source_host=source.host, source_port=3306,
                                  replication=creds.replication, semi_sync=False, tls=False)
        row = session.query_one(dialect.replica_status_query) or {}
        assert "" in (row.get("Source_SSL_CA_File"), row.get("Master_SSL_CA_File"))  # nothing verified
        # The source is not known to serve TLS: left as it is.
        assert ensure_replication_tls(session, dialect, True, set()) is None
        assert ensure_replication_tls(session, dialect, True, {source.host}) is not None
        assert ensure_replication_tls(session, dialect, True, {source.host}) is None  # done once

        def replicating_over_tls() -> bool:
            got = session.query_one(dialect.replica_status_query) or {}
            status = dialect.parse_replica_status(got)
            ca_file = got.get("Source_SSL_CA_File") or got.get("Master_SSL_CA_File")
            return status.io_running and ca_file == str(pair.tls_dir / c.KEY_TLS_CA)

        _wait(replicating_over_tls, 30, "replication moved onto TLS")


def test_rotated_certificate_is_served_after_a_live_reload(pair: TlsPair) -> None:
    dialect = dialect_for(pair.flavor)
    server = pair.servers[0]
    pid = server.process.pid if server.process else None
    with open_session(server.host, ROOT, tls=pair.client(0)) as session:
        before = session.query_one(dialect.served_certificate_query) or {}
        new = write_certificate(pair.tls_dir, pair.ca, timedelta(days=30))
        assert reload_if_stale(session, dialect, new.cert_pem)
    # A new session (MariaDB reports the certificate of the session's own handshake).
    with open_session(server.host, ROOT, tls=pair.client(0)) as session:
        after = session.query_one(dialect.served_certificate_query) or {}
        assert not reload_if_stale(session, dialect, new.cert_pem)  # now current: nothing to do
    assert after["Value"] != before["Value"]
    served = issue.certificate_facts(new.cert_pem).not_after
    assert after["Value"].split()[-2] == str(served.year)
    assert server.process is not None and server.process.pid == pid and server.running  # no restart


def client_tool(flavor: c.Flavor) -> list[str]:
    return mysql_root.client_argv("mysql") if flavor is c.Flavor.MYSQL else ["mariadb"]


def test_client_tools_verify_the_chain_with_the_operator_options(pair: TlsPair) -> None:
    """What backup Jobs and MariaDB seeding run: the option file of backup.commands, with ssl-ca."""
    stranger = issue.issue_ca("other", NAMESPACE, issue.utcnow(), timedelta(days=30))
    stranger_file = pair.tls_dir.parent / "stranger-tools-ca.crt"
    stranger_file.write_text(stranger.cert_pem)
    outcomes = {}
    for label, ca_file in (("cluster", pair.tls_dir / c.KEY_TLS_CA), ("stranger", stranger_file)):
        instance = Instance(pair.servers[0].host, ROOT, pair.flavor, ssl_ca=str(ca_file))
        with defaults_file(instance, str(pair.tls_dir.parent)) as options:
            done = subprocess.run(
                [*client_tool(pair.flavor), f"--defaults-extra-file={options}", "-N", "-B",
                 "-e", "SHOW SESSION STATUS LIKE 'Ssl_cipher'"],
                capture_output=True, text=True, timeout=60,
            )
        outcomes[label] = done
    assert outcomes["cluster"].returncode == 0, outcomes["cluster"].stderr
    assert len(outcomes["cluster"].stdout.split()) == 2  # Ssl_cipher <a cipher>
    assert outcomes["stranger"].returncode != 0
    assert any(w in outcomes["stranger"].stderr.lower() for w in ("certificate", "ssl", "tls"))
