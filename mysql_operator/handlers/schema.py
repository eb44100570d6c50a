"""kopf handlers for MysqlDatabase and MysqlUser: made so on the cluster's primary, as the operator.

A timer per object observes (does the database/user exist on the primary? did the spec or the
password Secret change since the last apply?) and acts only when something differs, so a steady
object costs one read a pass. The SQL runs on the primary, logged, so it replicates and survives
failover. A suspended cluster, a cluster without a primary or a missing Secret leaves the object
waiting (Ready False, with the reason). Deleting drops the database or user only with
`retentionPolicy: Delete`; only those objects carry a finalizer (kopf adds it for the delete
handler, filtered on the policy), so deleting a `Keep` object never waits for the operator.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import kopf
from pydantic import ValidationError

from mysql_operator import conventions as c
from mysql_operator.api.models import MysqlClusterSpec
from mysql_operator.api.schema import (
    DATABASE_PLURAL,
    USER_PLURAL,
    MysqlDatabaseSpec,
    MysqlUserSpec,
    RetentionPolicy,
)
from mysql_operator.conventions import Flavor
from mysql_operator.handlers import events
from mysql_operator.handlers.suspend import is_suspended
from mysql_operator.kube import Kube, KubeError
from mysql_operator.mysql import schema as sql
from mysql_operator.mysql.dialect import dialect_for
from mysql_operator.mysql.session import Login, MysqlError, Session, Statement, open_session
from mysql_operator.resources.credentials import decode_secret_data
from mysql_operator.resources.statefulset import credentials_secret
from mysql_operator.status import now_iso, set_condition

DATABASE_CR = (c.API_GROUP, c.API_VERSION, DATABASE_PLURAL)
USER_CR = (c.API_GROUP, c.API_VERSION, USER_PLURAL)
CLUSTER_API = f"{c.API_GROUP}/{c.API_VERSION}"
INTERVAL_SECONDS = 10.0
READY = "Ready"
log = logging.getLogger(__name__)


class NotYet(Exception):
    """The object cannot be made so yet (the message says what it waits for)."""


@dataclass(frozen=True)
class Primary:
    """Where and as whom to run SQL for one cluster."""

    host: str
    pod: str
    login: Login = field(repr=False)
    flavor: Flavor = field(kw_only=True)


def find_primary(kube: Kube, namespace: str, cluster: str) -> Primary:
    """The cluster's primary and the operator's login; NotYet when it has none to offer."""
    body = kube.get(CLUSTER_API, c.KIND, namespace, cluster)
    if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
        raise NotYet(f"MysqlCluster {cluster} does not exist")
    if is_suspended(body.get("spec") or {}):
        raise NotYet(f"MysqlCluster {cluster} is suspended (spec.suspend): nothing is changed")
    try:
        spec = MysqlClusterSpec.model_validate(body.get("spec") or {})
    except ValidationError:
        raise NotYet(f"MysqlCluster {cluster} has an invalid spec") from None
    pod = (body.get("status") or {}).get("primary")
    if not pod:
        raise NotYet(f"MysqlCluster {cluster} has no primary yet")
    host = ((kube.get("v1", "Pod", namespace, pod) or {}).get("status") or {}).get("podIP")
    secret = kube.get("v1", "Secret", namespace, credentials_secret(spec, cluster))
    password = decode_secret_data((secret or {}).get("data")).get(c.KEY_OPERATOR_PASSWORD)
    if not host or not password:
        raise NotYet(f"primary {pod} of MysqlCluster {cluster} is not reachable yet")
    return Primary(str(host), str(pod), Login(c.OPERATOR_USER, password), flavor=spec.flavor)


@contextmanager
def primary_session(primary: Primary, secrets: tuple[str, ...] = ()) -> Iterator[Session]:
    """A session on the primary status names, refused (NotYet) when that server is read-only: status
    may still name a primary that a failover or switchover has just fenced, and on MariaDB the
    operator's user would write through that fence, leaving an errant transaction on it."""
    with open_session(primary.host, primary.login, secrets=secrets) as session:
        # The lock first: a fence from now on ends this session; then the check sees its read_only.
        if not sql.take_schema_lock(session, dialect_for(primary.flavor)):
            raise NotYet(f"another schema session holds {primary.pod}; next pass")
        if sql.is_read_only(session):
            raise NotYet(f"{primary.pod} is read-only: not the serving primary (a role change is under way)")
        yield session


def secret_password(kube: Kube, namespace: str, name: str, key: str) -> tuple[str, str]:
    """(password, the Secret's resourceVersion); NotYet while the Secret or key is missing."""
    secret = kube.get("v1", "Secret", namespace, name)
    if secret is None:
        raise NotYet(f"Secret {name} not found")
    password = decode_secret_data(secret.get("data")).get(key)
    if not password:
        raise NotYet(f"Secret {name} has no key {key}")
    return password, str((secret.get("metadata") or {}).get("resourceVersion") or "")


def report(
    patch: kopf.Patch,
    status: Mapping[str, Any],
    cluster: str,
    ready: bool,
    reason: str,
    message: str,
    generation: int | None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write the Ready condition, cluster, message (and `extra`) when any of it changed."""
    conditions = set_condition(
        [dict(cond) for cond in status.get("conditions") or []],
        READY,
        ready,
        reason,
        message,
        generation,
        now_iso(),
    )
    fields: dict[str, Any] = {
        "cluster": cluster,
        "ready": ready,
        "message": message,
        "conditions": conditions,
        **({"observedGeneration": generation} if ready else {}),
        **(extra or {}),
    }
    for key, value in fields.items():
        if status.get(key) != value:
            patch.status[key] = value


def _kube(memo: kopf.Memo) -> Kube:
    kube: Kube = memo.kube
    return kube


def _cluster_name(spec: Mapping[str, Any]) -> str:
    return str(spec.get("cluster") or "")


def _invalid(error: ValidationError) -> str:
    return "; ".join(f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())


# ---- MysqlDatabase ------------------------------------------------------------------------------------


@kopf.timer(*DATABASE_CR, interval=INTERVAL_SECONDS, initial_delay=0.5)  # type: ignore[arg-type]
def database(
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    namespace: str | None,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: logging.Logger,
    **_: Any,
) -> None:
    """Make the database exist on the cluster's primary with its character set."""
    if meta.get("deletionTimestamp"):
        return
    generation = meta.get("generation")
    cluster = _cluster_name(spec)
    try:
        wanted = MysqlDatabaseSpec.model_validate(dict(spec))
    except ValidationError as error:
        report(patch, status, cluster, False, "InvalidSpec", _invalid(error), generation)
        return
    try:
        primary = find_primary(_kube(memo), str(namespace), cluster)
        with primary_session(primary) as session:
            exists = sql.database_exists(session, wanted.name)
            if exists and status.get("observedGeneration") == generation and status.get("ready"):
                return
            session.execute(*sql.create_database(wanted))
        message = f"database {wanted.name} {'updated' if exists else 'created'} on {primary.pod}"
        events.info(body, reason="Updated" if exists else "Created", message=message)
        logger.info("%s", message)
        report(patch, status, cluster, True, "Created", f"database {wanted.name} exists", generation)
    except NotYet as error:
        report(patch, status, cluster, False, "Waiting", str(error), generation)
    except MysqlError as error:
        report(patch, status, cluster, False, "SqlError", str(error), generation)
    except KubeError as error:
        raise kopf.TemporaryError(str(error), delay=5) from None


def _drop_on_delete(spec: kopf.Spec, **_: Any) -> bool:
    return spec.get("retentionPolicy") == RetentionPolicy.DELETE.value


@kopf.on.delete(*DATABASE_CR, when=_drop_on_delete)  # type: ignore[arg-type]
def database_deleted(
    spec: kopf.Spec, namespace: str | None, memo: kopf.Memo, logger: logging.Logger, **_: Any
) -> None:
    """retentionPolicy Delete: drop the database (nothing to do once its cluster is gone)."""
    _drop(_kube(memo), str(namespace), _cluster_name(spec), sql.drop_database(str(spec.get("name"))), logger)


def _drop(kube: Kube, namespace: str, cluster: str, statement: Statement, logger: logging.Logger) -> None:
    try:
        primary = find_primary(kube, namespace, cluster)
        with primary_session(primary) as session:
            session.execute(statement)
        logger.info("dropped on %s: %s", primary.pod, " ".join(statement.sql.split()[:3]))
    except NotYet as error:
        if "does not exist" in str(error):
            return  # the cluster went first: there is nothing left to drop
        raise kopf.TemporaryError(str(error), delay=10) from None
    except (MysqlError, KubeError) as error:
        raise kopf.TemporaryError(str(error), delay=10) from None


# ---- MysqlUser ------------------------------------------------------------------------------------------


def _applied_grants(status: Mapping[str, Any]) -> list[sql.GrantKey]:
    return [
        sql.GrantKey(str(g["target"]), tuple(g["privileges"]), bool(g.get("grantOption")))
        for g in status.get("appliedGrants") or []
    ]


def _grants_status(keys: list[sql.GrantKey]) -> list[dict[str, Any]]:
    return [
        {"target": k.target, "privileges": list(k.privileges), "grantOption": k.grant_option} for k in keys
    ]


@kopf.timer(*USER_CR, interval=INTERVAL_SECONDS, initial_delay=0.5)  # type: ignore[arg-type]
def user(
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    namespace: str | None,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: logging.Logger,
    **_: Any,
) -> None:
    """Make the user exist on the cluster's primary with the Secret's password and exactly its grants."""
    if meta.get("deletionTimestamp"):
        return
    generation = meta.get("generation")
    cluster = _cluster_name(spec)
    try:
        wanted = MysqlUserSpec.model_validate(dict(spec))
    except ValidationError as error:
        report(patch, status, cluster, False, "InvalidSpec", _invalid(error), generation)
        return
    kube = _kube(memo)
    ns = str(namespace)
    ref = wanted.password_secret_ref
    try:
        password, version = secret_password(kube, ns, ref.name, ref.key)
        primary = find_primary(kube, ns, cluster)
        grants = sql.grant_keys(wanted.grants)
        applied = _applied_grants(status)
        current = status.get("observedGeneration") == generation and status.get("ready")
        with primary_session(primary, secrets=(password,)) as session:
            exists = sql.user_exists(session, wanted.user, wanted.host)
            if exists and current and status.get("passwordSecretVersion") == version:
                return
            if not exists:
                session.execute(sql.create_user(wanted, password))
                applied = []
            else:
                session.execute(sql.alter_user(wanted, password))
            sql.apply_grants(session, wanted.user, wanted.host, applied, grants)
        what = f"user {wanted.user}@{wanted.host}"
        message = f"{what} {'updated' if exists else 'created'} on {primary.pod} with {len(grants)} grant(s)"
        events.info(body, reason="Updated" if exists else "Created", message=message)
        logger.info("%s", message)
        extra = {"passwordSecretVersion": version, "appliedGrants": _grants_status(grants)}
        report(patch, status, cluster, True, "Created", f"{what} exists", generation, extra)
    except NotYet as error:
        report(patch, status, cluster, False, "Waiting", str(error), generation)
    except MysqlError as error:
        report(patch, status, cluster, False, "SqlError", str(error), generation)
    except KubeError as error:
        raise kopf.TemporaryError(str(error), delay=5) from None


@kopf.on.delete(*USER_CR, when=_drop_on_delete)  # type: ignore[arg-type]
def user_deleted(
    spec: kopf.Spec, namespace: str | None, memo: kopf.Memo, logger: logging.Logger, **_: Any
) -> None:
    """retentionPolicy Delete: drop the user (nothing to do once its cluster is gone)."""
    statement = sql.drop_user(str(spec.get("user")), str(spec.get("host") or "%"))
    _drop(_kube(memo), str(namespace), _cluster_name(spec), statement, logger)
