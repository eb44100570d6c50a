"""One idle session kept open to each cluster's primary, so that its end wakes the topology loop at
once instead of at the next periodic probe.

A killed server's kernel closes its sockets, and a server that ends the session (a shutdown, a KILL)
says so: the sentinel's socket becomes readable, the session is pinged to tell that from a stray
packet, and `on_lost` runs (from the sentinel's thread: it must only wake the loop). A frozen server
or a partition sends nothing: the periodic probe finds those. The sentinel decides nothing: the
woken pass observes, and the grace period is counted as ever (topology.decide).

One thread and one selector serve every cluster; a watch costs one connection to the primary.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from mysql_operator.mysql.session import Login, MysqlError, Session, Timeouts, connect_session
from mysql_operator.tls.client import ClientTls

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Watch:
    key: str
    target: tuple[str, int]
    session: Session
    on_lost: Callable[[], None] = field(repr=False)


class Sentinel:
    """Idle sessions to primaries, keyed by cluster (uid); `watch` is idempotent."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._watches: dict[str, _Watch] = {}
        self._lock = threading.Lock()
        self._wakeup_read, self._wakeup_write = socket.socketpair()
        self._wakeup_read.setblocking(False)
        self._selector.register(self._wakeup_read, selectors.EVENT_READ, None)
        self._thread: threading.Thread | None = None

    def watching(self, key: str) -> tuple[str, int] | None:
        with self._lock:
            current = self._watches.get(key)
            return current.target if current is not None else None

    def watch(self, key: str, host: str, port: int, login: Login, on_lost: Callable[[], None], *,
              tls: ClientTls | None = None, timeouts: Timeouts | None = None) -> bool:
        """Keep a session open to host:port for `key` (replacing one to another target); whether one
        is open. A failure to connect is no news: the pass that called this saw the primary answer
        a moment ago, and the next probe tells."""
        if self.watching(key) == (host, port):
            return True
        self.forget(key)
        try:
            session = connect_session(host, login, port=port, timeouts=timeouts or Timeouts(connect=2.0),
                                      tls=tls)
        except MysqlError as error:
            log.debug("sentinel: no session to %s:%s: %s", host, port, error)
            return False
        entry = _Watch(key, (host, port), session, on_lost)
        with self._lock:
            stale = self._watches.pop(key, None)
            self._watches[key] = entry
            self._selector.register(session.fileno(), selectors.EVENT_READ, entry)
            self._start()
        if stale is not None:
            self._drop(stale)
        self._nudge()
        return True

    def forget(self, key: str) -> None:
        with self._lock:
            entry = self._watches.pop(key, None)
        if entry is not None:
            self._drop(entry)

    def close(self) -> None:
        for key in list(self._watches):
            self.forget(key)

    def _drop(self, entry: _Watch) -> None:
        with self._lock, contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(entry.session.fileno())
        entry.session.close()

    def _nudge(self) -> None:
        with contextlib.suppress(OSError):
            self._wakeup_write.send(b"x")

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="primary-sentinel", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                ready = self._selector.select(timeout=60.0)
            except OSError:  # a socket closed between registration and select: look again
                continue
            for selected, _ in ready:
                entry = selected.data
                if entry is None:
                    try:
                        while self._wakeup_read.recv(4096):
                            pass
                    except (BlockingIOError, OSError):
                        pass
                    continue
                self._readable(entry)

    def _readable(self, entry: _Watch) -> None:
        # Readable with nothing asked: the server ended the session (or died). A stray packet (a TLS
        # session ticket) leaves a session that still answers a ping: keep watching it.
        with self._lock:
            if self._watches.get(entry.key) is not entry:
                return
            try:
                self._selector.unregister(entry.session.fileno())
            except (KeyError, ValueError, OSError):
                return
        if entry.session.ping():
            with self._lock:
                if self._watches.get(entry.key) is entry:
                    self._selector.register(entry.session.fileno(), selectors.EVENT_READ, entry)
            return
        with self._lock:
            current = self._watches.get(entry.key) is entry
            if current:
                del self._watches[entry.key]
        entry.session.close()
        if not current:
            return  # forgotten meanwhile (another primary, the loop ended): no news for anyone
        log.info("sentinel: the session to the primary %s:%s ended", *entry.target)
        try:
            entry.on_lost()
        except Exception:  # waking a loop must never end the sentinel
            log.exception("sentinel: waking the topology loop failed")


SENTINEL = Sentinel()
