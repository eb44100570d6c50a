"""The one SQL session helper: pymysql with bounded timeouts and errors that never carry a password."""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pymysql
import pymysql.cursors

from mysql_operator.conventions import MYSQL_PORT
from mysql_operator.tls.client import ClientTls

log = logging.getLogger(__name__)

# pymysql client error codes that mean "the server is not there (any more)".
_UNREACHABLE_CODES = frozenset({2002, 2003, 2006, 2013, 2055})
ACCESS_DENIED = 1045
REDACTED = "<redacted>"


class Statement(NamedTuple):
    """One SQL statement and its arguments; `%` in the SQL is written `%%` (pymysql formatting)."""

    sql: str
    args: tuple[Any, ...] = ()


class MysqlError(Exception):
    """Base of every error raised by the mysql layer; its text never contains a password."""


class InstanceUnreachable(MysqlError):
    """The instance did not answer within the timeouts (down, not listening, connection lost)."""


class AccessDenied(MysqlError):
    """The server refused the login (user missing or wrong password)."""


# The server refuses a write under (super_)read_only (MySQL 1290): the one code both the backup and
# exporter users fall back on (made logged on the primary instead).
READ_ONLY_REFUSAL = 1290


class SqlError(MysqlError):
    """The server answered a statement with an error."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Login:
    """Who to log in as. The password never shows in repr() or str()."""

    user: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed to connect, and to wait for a read or a write on an open connection."""

    connect: float = 3.0
    read: float = 10.0
    write: float = 10.0


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every non-empty secret replaced by a marker."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


class Session:
    """An open connection to one instance. Use `open_session` to get one."""

    def __init__(self, connection: Any, host: str, secrets: tuple[str, ...]) -> None:
        self._connection = connection
        self.host = host
        self._secrets = secrets

    def query(self, statement: Statement) -> list[dict[str, Any]]:
        """Rows of a statement as dicts (column name -> value)."""
        with self._errors(statement.sql), self._connection.cursor(pymysql.cursors.DictCursor) as cursor:
            cursor.execute(statement.sql, tuple(statement.args))
            rows = cursor.fetchall()
        return list(rows) if rows else []

    def query_one(self, statement: Statement) -> dict[str, Any] | None:
        """The first row of a statement, or None."""
        rows = self.query(statement)
        return rows[0] if rows else None

    def execute(self, *statements: Statement) -> None:
        """Run statements in order (autocommit is on)."""
        for statement in statements:
            with self._errors(statement.sql), self._connection.cursor() as cursor:
                cursor.execute(statement.sql, tuple(statement.args))

    def fileno(self) -> int:
        """The connection's socket, for a selector (sentinel.py)."""
        return int(self._connection._sock.fileno())

    def ping(self) -> bool:
        """Whether the server still answers on this connection (no reconnect)."""
        try:
            self._connection.ping(reconnect=False)
            return True
        except Exception:
            return False

    def close(self) -> None:
        # closing a dead connection must not mask the real error
        with suppress(Exception):
            self._connection.close()

    @contextmanager
    def _errors(self, sql: str) -> Iterator[None]:
        try:
            yield
        except pymysql.err.MySQLError as error:
            raise _translate(error, self.host, self._secrets, sql) from None


def _translate(
    error: pymysql.err.MySQLError, host: str, secrets: tuple[str, ...], sql: str | None
) -> MysqlError:
    code = error.args[0] if error.args and isinstance(error.args[0], int) else None
    detail = error.args[1] if len(error.args) > 1 else str(error)
    statement = f" (in {' '.join(sql.split()[:3])} ...)" if sql else ""
    message = redact(f"{host}: ({code}) {detail}{statement}", secrets)
    if code in _UNREACHABLE_CODES or isinstance(error, pymysql.err.InterfaceError):
        return InstanceUnreachable(message)
    if code == ACCESS_DENIED:
        return AccessDenied(message)
    return SqlError(message, code)


_TLS_LOCK = threading.Lock()
_PREFERRED_TLS: list[ssl.SSLContext] = []


class _Connection(pymysql.connections.Connection):  # type: ignore[misc]
    """pymysql's connection with the context of its default PREFERRED TLS mode built once per
    process: building it loads the system's CA bundle (about 70 ms of CPU here), once per
    connection otherwise, and the topology loop opens a few connections per cluster every couple of
    seconds. Explicit TLS options build their own context as before."""

    def _create_ssl_ctx(self, sslp: Any) -> Any:
        if sslp != {}:
            return super()._create_ssl_ctx(sslp)
        with _TLS_LOCK:
            if not _PREFERRED_TLS:
                _PREFERRED_TLS.append(super()._create_ssl_ctx(sslp))
            return _PREFERRED_TLS[0]


@contextmanager
def open_session(
    host: str,
    login: Login,
    *,
    port: int = MYSQL_PORT,
    timeouts: Timeouts | None = None,
    unix_socket: str | None = None,
    secrets: Iterable[str] = (),
    tls: ClientTls | None = None,
) -> Iterator[Session]:
    """A session to `host` as `login`, closed on exit (see `connect_session`)."""
    session = connect_session(host, login, port=port, timeouts=timeouts, unix_socket=unix_socket,
                              secrets=secrets, tls=tls)
    try:
        yield session
    finally:
        session.close()


def connect_session(
    host: str,
    login: Login,
    *,
    port: int = MYSQL_PORT,
    timeouts: Timeouts | None = None,
    unix_socket: str | None = None,
    secrets: Iterable[str] = (),
    tls: ClientTls | None = None,
) -> Session:
    """A session to `host` as `login`; the caller closes it.

    With `tls` the session is TLS or nothing: the server must present a certificate of the given CA
    (and name, when set); a server that offers no TLS is refused, never talked to in plaintext.
    Any failure to open the session is InstanceUnreachable, except a refused login (AccessDenied).
    `secrets` are extra strings (other passwords sent in statements) scrubbed from error texts.
    Raises InstanceUnreachable, AccessDenied or SqlError.
    """
    limits = timeouts or Timeouts()
    scrub = (login.password, *secrets)
    try:
        connection = _Connection(
            host=host,
            port=port,
            user=login.user,
            password=login.password,
            unix_socket=unix_socket,
            connect_timeout=max(1, round(limits.connect)),
            # The handshake waits for the server's greeting with the read timeout: a stalled server
            # (SIGSTOP, an I/O freeze) accepts the TCP connection and then says nothing, so the
            # greeting gets the connect timeout; statements get the read timeout below.
            read_timeout=limits.connect,
            write_timeout=limits.write,
            autocommit=True,
            charset="utf8mb4",
            **({"ssl": tls.context()} if tls is not None else {}),
        )
    except pymysql.err.MySQLError as error:
        raise _translate(error, host, scrub, None) from None
    except OSError as error:
        raise InstanceUnreachable(redact(f"{host}: {error}", scrub)) from None
    except Exception as error:
        # Whatever else breaks a handshake (a garbled greeting, an auth plugin that cannot run) is an
        # instance we cannot use: it must never escape a handler as an unexpected exception.
        detail = f"{host}: login failed: {type(error).__name__}: {error}"
        raise InstanceUnreachable(redact(detail, scrub)) from None
    connection._read_timeout = limits.read  # pymysql keeps the per-statement timeout here
    connection._sock.settimeout(limits.read)
    session = Session(connection, host, scrub)
    # pymysql refuses a server without TLS once an SSLContext is given; older releases fell back to
    # plaintext, so check what was negotiated rather than trust the library's version.
    if tls is not None and not getattr(connection, "_secure", False):
        session.close()
        raise InstanceUnreachable(f"{host}: the server did not negotiate TLS")
    return session
