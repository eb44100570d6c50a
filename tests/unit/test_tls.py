"""TLS: issuance, names, the rotation decisions, the manifests and the SQL, per flavor."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from mysql_operator import conventions as c
from mysql_operator.api.models import MysqlClusterSpec
from mysql_operator.backup.commands import Instance, defaults_text
from mysql_operator.mysql.dialect import SourceTls, dialect_for
from mysql_operator.mysql.session import Login
from mysql_operator.resources.backup_job import build_job
from mysql_operator.resources.config import render_my_cnf
from mysql_operator.resources.meta import ClusterRef
from mysql_operator.resources.statefulset import build_statefulset
from mysql_operator.tls import rotation
from mysql_operator.tls.client import ClientTls
from mysql_operator.tls.issue import (
    KeyPair,
    certificate_facts,
    issue_ca,
    issue_server,
    server_names,
    signed_by,
)
from mysql_operator.tls.manifests import (
    build_ca_secret,
    build_certificate,
    build_server_secret,
    pod_mounts_tls,
    server_secret_name,
    tls_source,
    wanted_names,
)

REF = ClusterRef(name="shop-db", namespace="shop", uid="1234-uid")
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def spec(**fields: Any) -> MysqlClusterSpec:
    return MysqlClusterSpec.model_validate(fields)


@pytest.fixture(scope="module")
def ca() -> KeyPair:
    return issue_ca(REF.name, REF.namespace, NOW, timedelta(days=3650))


def server_data(ca: KeyPair, names: tuple[str, ...], now: datetime, days: int = 90) -> dict[str, str]:
    pair = issue_server(ca, names, now, timedelta(days=days))
    return {c.KEY_TLS_CA: ca.cert_pem, c.KEY_TLS_CERT: pair.cert_pem, c.KEY_TLS_KEY: pair.key_pem}


# ---------------------------------------------------------------------------------------- names


def test_server_names_cover_services_pods_and_loopback_but_no_pod_ip() -> None:
    names = server_names("shop-db", "shop", ["db.example.com"])
    for expected in (
        "shop-db-primary.shop.svc",
        "shop-db-primary.shop.svc.cluster.local",
        "shop-db-replicas.shop.svc",
        "shop-db.shop.svc",
        "shop-db-0.shop-db.shop.svc",
        "shop-db-8.shop-db.shop.svc.cluster.local",
        "localhost",
        "127.0.0.1",
        "::1",
        "db.example.com",
    ):
        assert expected in names
    # Pod IPs change on every reschedule: no other address is claimed.
    assert [n for n in names if n[0].isdigit() or ":" in n] == ["127.0.0.1", "::1"]


def test_issued_server_certificate_carries_every_name_and_chains_to_its_ca(ca: KeyPair) -> None:
    names = server_names("shop-db", "shop")
    pair = issue_server(ca, names, NOW, timedelta(days=90))
    facts = certificate_facts(pair.cert_pem)
    assert facts.names == frozenset(names)
    assert {"127.0.0.1", "::1"} == facts.ip_addresses
    assert facts.not_after - NOW == timedelta(days=90)
    assert signed_by(pair.cert_pem, ca.cert_pem)
    other = issue_ca("other", "shop", NOW, timedelta(days=3650))
    assert not signed_by(pair.cert_pem, other.cert_pem)
    assert "BEGIN PRIVATE KEY" in pair.key_pem


def test_server_certificate_never_outlives_its_ca() -> None:
    short_ca = issue_ca("shop-db", "shop", NOW, timedelta(days=10))
    pair = issue_server(short_ca, ["localhost"], NOW, timedelta(days=90))
    assert certificate_facts(pair.cert_pem).not_after == certificate_facts(short_ca.cert_pem).not_after


def test_python_client_verifies_the_pod_name_whatever_address_it_dials(ca: KeyPair) -> None:
    """The operator dials a pod IP; the handshake checks the pod's DNS name instead."""
    context = ClientTls(ca.cert_pem, "shop-db-1.shop-db.shop.svc").context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ClientTls(ca.cert_pem).context().check_hostname is False  # CA only when no name is known


# ------------------------------------------------------------------------------------- rotation


def test_renewal_is_due_once_less_than_a_third_of_the_lifetime_remains(ca: KeyPair) -> None:
    facts = certificate_facts(issue_server(ca, ["localhost"], NOW, timedelta(days=90)).cert_pem)
    # The certificate is back-dated by the clock-skew allowance: lifetime is 90 days + 5 minutes.
    assert not rotation.renewal_due(facts, NOW + timedelta(days=59))
    assert rotation.renewal_due(facts, NOW + timedelta(days=60, hours=1))
    assert rotation.renewal_due(facts, NOW + timedelta(days=91))  # expired


def test_server_certificate_is_reissued_only_for_a_reason(ca: KeyPair) -> None:
    names = wanted_names(spec(), REF)
    data = server_data(ca, names, NOW)
    assert rotation.server_reissue_reason(data, ca.cert_pem, names, NOW + 30 * DAY) is None
    assert "no server certificate" in str(rotation.server_reissue_reason({}, ca.cert_pem, names, NOW))
    assert "lifetime" in str(rotation.server_reissue_reason(data, ca.cert_pem, names, NOW + 61 * DAY))
    more = wanted_names(spec(tls={"additionalNames": ["db.example.com"]}), REF)
    assert "db.example.com" in str(rotation.server_reissue_reason(data, ca.cert_pem, more, NOW))
    other = issue_ca("shop-db", "shop", NOW, timedelta(days=3650))
    assert "not signed" in str(rotation.server_reissue_reason(data, other.cert_pem, names, NOW))
    broken = {**data, c.KEY_TLS_CERT: "-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n"}
    assert rotation.server_reissue_reason(broken, ca.cert_pem, names, NOW) is not None


def test_ca_is_reissued_when_missing_or_in_its_last_third(ca: KeyPair) -> None:
    assert rotation.ca_reissue_reason(None, None, NOW) == "no CA yet"
    assert rotation.ca_reissue_reason(ca.cert_pem, ca.key_pem, NOW + 2400 * DAY) is None
    assert rotation.ca_reissue_reason(ca.cert_pem, ca.key_pem, NOW + 2500 * DAY) is not None
    assert rotation.ca_reissue_reason(ca.cert_pem, "not a key", NOW) == "the CA Secret is unreadable"


def test_a_new_ca_keeps_the_previous_one_trusted_until_it_expires(ca: KeyPair) -> None:
    new = issue_ca("shop-db", "shop", NOW + 2500 * DAY, timedelta(days=3650))
    bundle = rotation.trust_bundle(new.cert_pem, ca.cert_pem, NOW + 2500 * DAY)
    serials = [f.serial for f in map(certificate_facts, _split(bundle))]
    assert serials == [certificate_facts(new.cert_pem).serial, certificate_facts(ca.cert_pem).serial]
    # Once the old CA expired it leaves the bundle; never more than two CAs.
    assert rotation.trust_bundle(new.cert_pem, bundle, NOW + 3700 * DAY) == new.cert_pem
    newest = issue_ca("shop-db", "shop", NOW + 2600 * DAY, timedelta(days=3650))
    assert len(_split(rotation.trust_bundle(newest.cert_pem, bundle, NOW + 2600 * DAY))) == 2
    # Re-running with the same CA changes nothing.
    assert rotation.trust_bundle(ca.cert_pem, ca.cert_pem, NOW) == ca.cert_pem


def _split(bundle: str) -> list[str]:
    marker = "-----END CERTIFICATE-----\n"
    return [part + marker for part in bundle.split(marker) if part.strip()]


def test_reload_is_needed_only_when_mysqld_serves_another_certificate(ca: KeyPair) -> None:
    pair = issue_server(ca, ["localhost"], NOW, timedelta(days=90))
    served = (NOW + 90 * DAY).strftime("%b %d %H:%M:%S %Y GMT")
    assert not rotation.reload_needed(served, pair.cert_pem)
    older = (NOW + 60 * DAY).strftime("%b %e %H:%M:%S %Y GMT")
    assert rotation.reload_needed(older, pair.cert_pem)
    assert rotation.reload_needed("", pair.cert_pem)  # no TLS served yet
    assert not rotation.reload_needed(served, None)  # TLS off: nothing to reload
    parsed = rotation.parse_served_not_after("Mar  1 09:05:00 2027 GMT")
    assert parsed == datetime(2027, 3, 1, 9, 5, tzinfo=UTC)


# -------------------------------------------------------------------------------- api and manifests


def test_tls_is_on_by_default_with_operator_issued_certificates() -> None:
    default = spec()
    assert default.tls.enabled and not default.tls.require_secure_transport
    assert tls_source(default) == "operator"
    assert server_secret_name(default, "shop-db") == "shop-db-tls"
    assert server_secret_name(spec(tls={"secretName": "mine"}), "shop-db") == "mine"
    assert server_secret_name(spec(tls={"enabled": False}), "shop-db") is None


@pytest.mark.parametrize(
    "tls, message",
    [
        ({"secretName": "mine", "certManager": {"issuerRef": {"name": "ca"}}}, "exclusive"),
        ({"enabled": False, "requireSecureTransport": True}, "needs tls.enabled"),
        ({"additionalNames": ["bad name\n[mysqld]"]}, "additionalNames"),
        ({"durationDays": 0}, "durationDays"),
        ({"certManager": {"issuerRef": {"name": "ca", "kind": "Secret"}}}, "kind"),
    ],
)
def test_invalid_tls_specs_are_refused(tls: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(tls=tls)


def test_tls_keys_are_owned_by_the_operator() -> None:
    for key in ("ssl_key", "ssl-cert", "require_secure_transport"):
        with pytest.raises(ValidationError, match="keys the operator owns"):
            spec(mysqlConfig={key: "x"})


@pytest.mark.parametrize("flavor", ["mysql", "mariadb"])
def test_my_cnf_points_both_flavors_at_the_mounted_certificate(flavor: str) -> None:
    text = render_my_cnf(spec(flavor=flavor, tls={"requireSecureTransport": True}))
    assert "ssl_ca = /etc/mysql/tls/ca.crt" in text
    assert "ssl_cert = /etc/mysql/tls/tls.crt" in text
    assert "ssl_key = /etc/mysql/tls/tls.key" in text
    assert "require_secure_transport = ON" in text
    assert "require_secure_transport" not in render_my_cnf(spec(flavor=flavor))
    assert "ssl_" not in render_my_cnf(spec(flavor=flavor, tls={"enabled": False}))


def test_pods_mount_the_server_secret_read_only_and_refreshable() -> None:
    sts = build_statefulset(REF, spec(tls={"secretName": "mine"}))
    pod = sts["spec"]["template"]
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "tls")
    assert volume["secret"] == {"secretName": "mine", "defaultMode": 0o440}
    mount = next(m for m in pod["spec"]["containers"][0]["volumeMounts"] if m["name"] == "tls")
    assert mount == {"name": "tls", "mountPath": "/etc/mysql/tls", "readOnly": True}  # no subPath
    assert pod_mounts_tls(pod)
    off = build_statefulset(REF, spec(tls={"enabled": False}))["spec"]["template"]
    assert not pod_mounts_tls(off)


def test_generated_secrets_are_owned_and_the_ca_key_stays_out_of_the_pod_secret(ca: KeyPair) -> None:
    ca_secret = build_ca_secret(REF, ca.cert_pem, ca.key_pem)
    assert ca_secret["metadata"]["name"] == "shop-db-ca"
    assert ca_secret["metadata"]["ownerReferences"][0]["uid"] == REF.uid
    server = build_server_secret(REF, ca.cert_pem, "CERT", "KEY")
    assert server["type"] == "kubernetes.io/tls"
    assert set(server["stringData"]) == {"ca.crt", "tls.crt", "tls.key"}
    assert ca.key_pem not in str(server)


def test_cert_manager_certificate_asks_for_every_name_and_renews_at_a_third() -> None:
    wanted = spec(tls={"certManager": {"issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}},
                       "durationDays": 30, "additionalNames": ["db.example.com"]})
    assert tls_source(wanted) == "cert-manager"
    cert = build_certificate(REF, wanted)
    assert cert["apiVersion"] == "cert-manager.io/v1" and cert["kind"] == "Certificate"
    assert cert["metadata"]["ownerReferences"][0]["uid"] == REF.uid
    body = cert["spec"]
    assert body["secretName"] == "shop-db-tls"
    assert body["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert "shop-db-primary.shop.svc" in body["dnsNames"] and "db.example.com" in body["dnsNames"]
    assert "shop-db-2.shop-db.shop.svc" in body["dnsNames"]
    assert body["ipAddresses"] == ["127.0.0.1", "::1"]
    assert body["duration"] == "720h" and body["renewBefore"] == "240h"


# ---------------------------------------------------------------------------------------------- SQL


def test_mysql_replica_connects_over_tls_verifying_ca_and_name_when_known() -> None:
    statement = dialect_for(c.Flavor.MYSQL).change_source(
        "shop-db-0.shop-db.shop.svc", 3306, "repl", "pw", SourceTls("/etc/mysql/tls/ca.crt", True)
    )
    assert statement.sql.endswith(", SOURCE_SSL=1, SOURCE_SSL_CA=%s, SOURCE_SSL_VERIFY_SERVER_CERT=%s")
    assert statement.args[-2:] == ("/etc/mysql/tls/ca.crt", 1)


def test_mariadb_replica_connects_over_tls_verifying_the_ca() -> None:
    statement = dialect_for(c.Flavor.MARIADB).change_source(
        "127.0.6.5", 3306, "repl", "pw", SourceTls("/etc/mysql/tls/ca.crt", False)
    )
    assert ", MASTER_SSL=1, MASTER_SSL_CA=%s, MASTER_SSL_VERIFY_SERVER_CERT=%s" in statement.sql
    assert statement.args[-2:] == ("/etc/mysql/tls/ca.crt", 0)


def test_clone_requires_tls_with_the_ca_and_reload_statements_per_flavor() -> None:
    mysql = dialect_for(c.Flavor.MYSQL)
    statements = mysql.clone_from("127.0.0.1", 3306, "root", "pw", "/etc/mysql/tls/ca.crt")  # type: ignore[attr-defined]
    assert statements[2].sql == "SET GLOBAL clone_ssl_ca = %s"
    assert statements[-1].sql.endswith("REQUIRE SSL")
    assert mysql.reload_tls.sql == "ALTER INSTANCE RELOAD TLS"
    assert dialect_for(c.Flavor.MARIADB).reload_tls.sql == "FLUSH SSL"


# --------------------------------------------------------------------------- backup Jobs and tools


def test_backup_job_mounts_only_the_ca_and_points_the_tools_at_it() -> None:
    from dataclasses import replace

    from tests.unit.test_backup_operator import request

    job = build_job(replace(request(), tls_secret="shop-db-tls"))
    pod = job["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "tls-ca")
    assert volume["secret"] == {"secretName": "shop-db-tls", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["DB_SSL_CA"] == "/etc/mysql-operator/tls/ca.crt"
    plain = build_job(request())["spec"]["template"]["spec"]
    assert "DB_SSL_CA" not in {e["name"] for e in plain["containers"][0]["env"]}


@pytest.mark.parametrize("flavor, mode", [("mysql", "ssl-mode=VERIFY_CA"), ("mariadb", "ssl")])
def test_tool_option_files_ask_for_tls_verified_by_the_ca(flavor: str, mode: str) -> None:
    ca = "/etc/mysql-operator/tls/ca.crt"
    instance = Instance("127.0.0.9", Login("u", "p"), c.Flavor(flavor), ssl_ca=ca)
    lines = defaults_text(instance).splitlines()
    assert 'ssl-ca="/etc/mysql-operator/tls/ca.crt"' in lines and mode in lines
    plain = defaults_text(Instance("127.0.0.9", Login("u", "p"), c.Flavor(flavor)))
    assert "ssl" not in plain


@pytest.mark.parametrize("flavor, word", [("mysql", "SOURCE"), ("mariadb", "MASTER")])
def test_only_the_tls_part_of_a_replica_is_changed_when_it_converges(flavor: str, word: str) -> None:
    dialect = dialect_for(c.Flavor(flavor))
    on = dialect.change_source_tls(SourceTls("/etc/mysql/tls/ca.crt", False))
    assert f"{word}_SSL=1, {word}_SSL_CA=%s" in on.sql and on.args == ("/etc/mysql/tls/ca.crt", 0)
    off = dialect.change_source_tls(None)
    assert f"{word}_SSL=0, {word}_SSL_CA=''" in off.sql and "HOST" not in off.sql


# ------------------------------------------------------------------------- ensure_tls (the act)


class FakeKube:
    """Secrets and applied objects in memory, as the API server would keep them."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.writes = 0

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, name))

    def create_if_absent(self, manifest: dict[str, Any]) -> bool:
        self.writes += 1
        self.objects.setdefault((manifest["kind"], manifest["metadata"]["name"]), manifest)
        return True

    def merge_patch(
        self, api_version: str, kind: str, namespace: str, name: str, body: dict[str, Any]
    ) -> None:
        self.writes += 1
        self.objects[(kind, name)]["data"].update(body["data"])

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.writes += 1
        self.objects[(manifest["kind"], manifest["metadata"]["name"])] = manifest
        return manifest


def test_ensure_tls_issues_once_then_only_when_a_reason_appears() -> None:
    from mysql_operator.resources.credentials import decode_secret_data
    from mysql_operator.tls.ensure import ensure_tls

    kube = FakeKube()
    first = ensure_tls(kube, REF, spec(), NOW)  # type: ignore[arg-type]
    assert first.ok and len(first.issued) == 2  # the CA and the server certificate
    server = decode_secret_data(kube.objects[("Secret", "shop-db-tls")]["data"])
    facts = certificate_facts(server["tls.crt"])
    assert facts.subject.startswith("CN=shop-db-primary.shop.svc,")
    writes = kube.writes
    again = ensure_tls(kube, REF, spec(), NOW + 10 * DAY)  # type: ignore[arg-type]
    assert again.ok and again.issued == () and kube.writes == writes
    due = ensure_tls(kube, REF, spec(), NOW + 61 * DAY)  # type: ignore[arg-type]
    assert [i.split(" ")[0] for i in due.issued] == ["server"]
    renewed = decode_secret_data(kube.objects[("Secret", "shop-db-tls")]["data"])
    assert certificate_facts(renewed["tls.crt"]).serial != facts.serial
    assert renewed["ca.crt"] == server["ca.crt"]  # same CA: clients keep trusting


def test_ensure_tls_waits_for_a_users_secret_and_creates_the_cert_manager_certificate() -> None:
    from mysql_operator.tls.ensure import ensure_tls

    kube = FakeKube()
    missing = ensure_tls(kube, REF, spec(tls={"secretName": "mine"}), NOW)  # type: ignore[arg-type]
    assert not missing.ok and "Secret mine not found" in missing.message
    manager = spec(tls={"certManager": {"issuerRef": {"name": "corp-ca"}}})
    waiting = ensure_tls(kube, REF, manager, NOW)  # type: ignore[arg-type]
    assert not waiting.ok and "cert-manager" in waiting.message
    assert kube.objects[("Certificate", "shop-db-tls")]["spec"]["issuerRef"]["name"] == "corp-ca"
    assert ("Secret", "shop-db-ca") not in kube.objects  # no CA of ours when cert-manager issues
