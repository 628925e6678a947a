"""A gunicorn worker that gives a thread only to a request that has fully arrived.

The endpoint is public (the process binds 0.0.0.0, and Heroku's router does not buffer slow bodies). With sync
workers, a client that connects and sends nothing holds a whole worker until its 30 s timeout, so two idle
connections stopped every webhook; gunicorn's own ``gthread`` worker still lends a thread to each new connection
for its first read (up to 5 s) and then reads headers and body with no time limit.

Here the event loop of each worker reads every new connection without blocking, into a small buffer, until the
request line, the headers and (for a ``Content-Length`` body up to :data:`BODY_PREFETCH_MAX`) the whole body are
there; only then does a thread get the connection, and its parser reads from that buffer. A connection that has
not delivered its request within ``WEB_READ_TIMEOUT`` (10 s) of its connect is closed without ever taking a
thread. What a thread still reads from the socket itself (a chunked body, a body after ``Expect: 100-continue``) is
read with a :data:`THREAD_READ_TIMEOUT` per receive. Responses are small, so writing them never waits on a slow
reader for long either.

Keep-alive is off (``keepalive = 0`` in ``webhook/gunicorn_conf.py``): every request arrives on a new connection,
so each one goes through the buffer, and none waits in a thread for a client's next request. Providers send one
webhook per connection, and sync workers closed every connection too.

TLS and HTTP/2 prior knowledge read from the socket before the parser does; under either, connections take
gthread's own path unchanged (neither is configured here: the platform's router terminates TLS).
"""
from __future__ import annotations

import errno
import selectors
import socket
import time
from functools import partial
from typing import Any

from gunicorn.http2 import negotiation
from gunicorn.workers.gthread import TConn, ThreadWorker

from config.settings import Settings

#: seconds a thread waits for each receive of what was not buffered (a chunked body, a body sent after 100-continue)
THREAD_READ_TIMEOUT = 5.0
#: request line and headers longer than this are handed over as they are (the parser answers 400 for them)
HEADER_BYTES_MAX = 32 * 1024
#: bodies up to this size are buffered whole; the app reads the rest of a larger one (or answers 413 first)
BODY_PREFETCH_MAX = 128 * 1024
_RECV = 64 * 1024


def request_complete(buffer: bytes | bytearray) -> bool:
    """Whether ``buffer`` holds a whole request to hand to a thread (or enough to let the parser reject it)."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return len(buffer) >= HEADER_BYTES_MAX
    head = bytes(buffer[:end]).lower()
    body = len(buffer) - end - 4
    if b"\nexpect:" in head:
        return True  # the client waits for "100 Continue" before it sends the body
    length = _content_length(head)
    if length is not None:
        return body >= min(length, BODY_PREFETCH_MAX)
    if b"\ntransfer-encoding:" in head:
        return buffer.endswith(b"0\r\n\r\n") or body >= BODY_PREFETCH_MAX
    return True


def _content_length(head: bytes) -> int | None:
    """The one Content-Length of lower-cased headers; None when absent, duplicated or unreadable (the parser
    decides about those)."""
    values = [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")[1:]
              if line.startswith(b"content-length:")]
    if len(values) != 1 or not values[0].isdigit():
        return None
    return int(values[0])


class BufferedConn(TConn):
    """A connection whose first request was read by the event loop; the thread's parser starts from that buffer."""

    def __init__(self, cfg: Any, sock: socket.socket, client: Any, server: Any) -> None:
        super().__init__(cfg, sock, client, server)
        self.preread = bytearray()

    def init(self) -> None:
        first = not self.initialized
        super().init()
        # gthread set the socket blocking (no time limit) before calling us: bound every later receive
        self.sock.settimeout(THREAD_READ_TIMEOUT)
        if first and self.preread:
            self.parser.unreader.unread(bytes(self.preread))
            self.preread = bytearray()


class BufferingThreadWorker(ThreadWorker):
    """gthread, except that a connection takes a thread only once its request is buffered (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: seconds from connect to a complete request (headers, and a Content-Length body)
        self.read_timeout = Settings.from_env().web_read_timeout
        #: connections whose request is still arriving, oldest first (all share one deadline length)
        self.reading: dict[BufferedConn, None] = {}

    def _buffers(self, client: Any) -> bool:
        return not self.cfg.is_ssl and not negotiation.prior_knowledge_allowed(self.cfg, client)

    def accept(self, listener: socket.socket) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        if not self._buffers(client_addr):
            client_sock.setblocking(True)
            self.enqueue_req(TConn(self.cfg, client_sock, client_addr, listener.getsockname()))
            return
        conn = BufferedConn(self.cfg, client_sock, client_addr, listener.getsockname())  # non-blocking now
        conn.timeout = time.monotonic() + self.read_timeout
        self.reading[conn] = None
        self.poller.register(client_sock, selectors.EVENT_READ, partial(self._on_request_bytes, conn))
        self._on_request_bytes(conn, client_sock)  # on loopback the request is often there already

    def _on_request_bytes(self, conn: BufferedConn, client: socket.socket) -> None:
        """Runs in the event loop: take what arrived, hand the connection to a thread once the request is whole."""
        try:
            data = conn.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away before sending a whole request
            self._drop(conn)
            return
        conn.preread += data
        if request_complete(conn.preread):
            self.poller.unregister(conn.sock)
            del self.reading[conn]
            conn.data_ready = True
            self.enqueue_req(conn)

    def _drop(self, conn: BufferedConn) -> None:
        self.reading.pop(conn, None)
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        """Also close connections that did not deliver a whole request in time (all of them once stopping)."""
        super().murder_pending()
        now = time.monotonic()
        while self.reading:
            conn = next(iter(self.reading))
            if self.alive and conn.timeout > now:
                break
            self._drop(conn)

    def murder_keepalived(self, force: bool = False) -> None:
        super().murder_keepalived(force)
        if force:
            for conn in list(self.reading):
                self._drop(conn)
