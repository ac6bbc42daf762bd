"""The harness's cuttable TCP proxy: forwards, refuses and resets while cut, forwards again after."""

import socket
import threading

import pytest

from infra.fault_proxy import TcpProxy


@pytest.fixture
def echo_server():
    server = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=lambda c=conn: [c.sendall(d) for d in iter(lambda: c.recv(1024), b"")], daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def _roundtrip(port: int, payload: bytes, conn: socket.socket | None = None) -> bytes:
    conn = conn or socket.create_connection(("127.0.0.1", port), timeout=5)
    conn.sendall(payload)
    return conn.recv(1024)


def test_cut_refuses_new_and_kills_open_connections_then_restore_forwards(echo_server):
    proxy = TcpProxy("127.0.0.1", echo_server)
    port = proxy.start()
    try:
        kept = socket.create_connection(("127.0.0.1", port), timeout=5)
        assert _roundtrip(port, b"before", kept) == b"before"
        proxy.cut()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
        # The connection opened before the cut is dead too (a keep-alive HTTP client must not get through).
        with pytest.raises(OSError):
            kept.sendall(b"during")
            if not kept.recv(1024):
                raise ConnectionResetError("closed")
        proxy.restore()
        assert proxy.port == port
        assert _roundtrip(port, b"after") == b"after"
    finally:
        proxy.stop()
