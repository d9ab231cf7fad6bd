"""The fault proxy itself, against an echo server: each mode does what its docstring says."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.faultproxy import FaultProxy
from tests.support.ports import free_port, wait_until


@pytest.fixture
def echo() -> Iterator[int]:
    port = free_port()
    server = socket.create_server(("127.0.0.1", port))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn, contextlib.suppress(ConnectionError):  # the proxy's resets
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield port
    stop.set()
    thread.join(5)
    server.close()


def _client(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    got = b""
    while len(got) < n:
        chunk = sock.recv(n - len(got))
        if not chunk:
            break
        got += chunk
    return got


def test_pass_and_blackhole_holds_then_delivers_in_order(echo: int) -> None:
    with FaultProxy(echo) as proxy, _client(proxy.port) as sock:
        sock.sendall(b"one")
        assert _recv_exactly(sock, 3) == b"one"
        proxy.blackhole()
        sock.sendall(b"two")
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(10)  # nothing gets through, the socket stays open
        sock.sendall(b"three")
        proxy.pass_through()
        sock.settimeout(5)
        assert _recv_exactly(sock, 8) == b"twothree"


def test_reset_and_close_after_first_reply(echo: int) -> None:
    with FaultProxy(echo) as proxy:
        sock = _client(proxy.port)
        sock.sendall(b"x")
        assert _recv_exactly(sock, 1) == b"x"
        proxy.reset()
        with pytest.raises(ConnectionResetError):
            sock.sendall(b"y")
            sock.recv(10)
        sock.close()
        proxy.close_after_first_reply(times=2)
        for _ in range(2):
            with _client(proxy.port) as hung:
                hung.sendall(b"hello")
                assert _recv_exactly(hung, 5) == b"hello"
                assert hung.recv(10) == b""  # then the proxy hangs up
        with _client(proxy.port) as third:  # the next one passes again
            third.sendall(b"a")
            assert _recv_exactly(third, 1) == b"a"
            third.sendall(b"b")
            assert _recv_exactly(third, 1) == b"b"
        wait_until(lambda: proxy.connections == 4, 5, "four connections counted")


def test_delay_adds_latency(echo: int) -> None:
    with FaultProxy(echo) as proxy, _client(proxy.port) as sock:
        proxy.delay(0.3)
        started = time.monotonic()
        sock.sendall(b"slow")
        assert _recv_exactly(sock, 4) == b"slow"
        assert time.monotonic() - started >= 0.55  # both directions
