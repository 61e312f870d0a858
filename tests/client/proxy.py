"""A loopback TCP proxy that misbehaves on purpose: the network between client and server.

Each new connection takes the next action from `plan` (then `pass` once it is empty):
`pass` forwards both ways; `drop_answer` forwards the request, lets the server answer,
and closes the connection without handing the answer on (a lost answer); `reject_429`
answers 429 with Retry-After itself, as a rate-limiting load balancer would.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import deque
from typing import Final

REJECTION: Final = (
    b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\n"
    b"Content-Type: application/problem+json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
)


class Proxy:
    def __init__(self, upstream: str, plan: list[str] | None = None) -> None:
        host, port = upstream.removeprefix("http://").rsplit(":", 1)
        self.upstream = (host, int(port))
        self.plan = deque(plan or [])
        self.connections: list[str] = []
        self.dropped_answers: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)  # so the accept loop sees `close` soon
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            action = self.plan.popleft() if self.plan else "pass"
            self.connections.append(action)
            threading.Thread(target=self._handle, args=(client, action), daemon=True).start()

    def _handle(self, client: socket.socket, action: str) -> None:
        with client:
            if action == "reject_429":
                _read_request(client)
                client.sendall(REJECTION)
                return
            with socket.create_connection(self.upstream) as server:
                threading.Thread(target=_pump, args=(client, server), daemon=True).start()
                if action == "drop_answer":
                    answer = server.recv(65536)
                    self.dropped_answers.append(answer)
                    client.shutdown(socket.SHUT_RDWR)
                    return
                _pump(server, client)


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


def _read_request(client: socket.socket) -> bytes:
    """One whole request (head and Content-Length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += client.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += client.recv(65536)
    return data
