"""A loopback TCP proxy between a client and `ledger serve` that loses or delays answers.

Each connection takes the next action of `plan` (`pass` once it is empty): `pass`
forwards both ways; `drop` forwards the request, reads the server's whole answer
and closes the client's connection without it; `delay:S` holds the answer S seconds
before passing it on (long enough for the client to give up).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque


class Proxy:
    def __init__(self, upstream: str, plan: list[str] | None = None) -> None:
        host, port = upstream.removeprefix("http://").rsplit(":", 1)
        self.upstream = (host, int(port))
        self.plan = deque(plan or [])
        self.lost: list[bytes] = []
        """Answers the server gave that the client never saw."""
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
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
            threading.Thread(target=self._handle, args=(client, action), daemon=True).start()

    def _handle(self, client: socket.socket, action: str) -> None:
        with client, socket.create_connection(self.upstream) as server:
            threading.Thread(target=_pump, args=(client, server), daemon=True).start()
            if action == "pass":
                _pump(server, client)
                return
            answer = _read_answer(server)
            self.lost.append(answer)
            if action.startswith("delay:"):
                time.sleep(float(action.removeprefix("delay:")))
                with contextlib.suppress(OSError):
                    client.sendall(answer)  # the client has given up by now
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


def _read_answer(server: socket.socket) -> bytes:
    """One whole HTTP answer (head and Content-Length body) from the server."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = server.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = server.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body
