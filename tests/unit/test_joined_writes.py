"""JoinedWrites: an answer's head and body, written in one step, leave in one send."""

from __future__ import annotations

import asyncio
import socket

from api.protocol import JoinedWrites


class Sends(asyncio.Transport):
    """A transport that keeps what each write sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0

    def abort(self) -> None:
        self.closed = True


async def test_writes_of_one_step_leave_in_one_send_in_order() -> None:
    sends = Sends()
    joined = JoinedWrites(sends, asyncio.get_running_loop())
    joined.write(b"HTTP/1.1 200 OK\r\n\r\n")
    joined.write(memoryview(b"{}"))
    assert sends.sent == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
    joined.write(b"head")  # alone: it leaves when the step ends
    assert sends.sent == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
    await asyncio.sleep(0)
    assert sends.sent[1:] == [b"head"]
    await asyncio.sleep(0)
    assert len(sends.sent) == 2  # nothing sent twice


async def test_close_sends_what_is_held_first_and_abort_drops_it() -> None:
    loop = asyncio.get_running_loop()
    sends = Sends()
    joined = JoinedWrites(sends, loop)
    joined.write(b"last words")
    assert joined.get_write_buffer_size() == len(b"last words")
    joined.close()
    assert (sends.sent, sends.closed) == ([b"last words"], True)
    dropped = Sends()
    joined = JoinedWrites(dropped, loop)
    joined.write(b"never")
    joined.abort()
    await asyncio.sleep(0)
    assert (dropped.sent, dropped.closed) == ([], True)


async def test_over_a_real_socket_every_byte_arrives_in_order() -> None:
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    transport, _ = await loop.create_connection(asyncio.Protocol, sock=ours)
    joined = JoinedWrites(transport, loop)
    reader, writer = await asyncio.open_connection(sock=theirs)
    try:
        for n in range(100):
            joined.write(b"head %d;" % n)
            joined.write(b"body %d;" % n)
            if n % 3 == 0:
                joined.write(b"more %d;" % n)
                await asyncio.sleep(0)
        joined.close()
        received = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    expected = b"".join(
        b"head %d;body %d;" % (n, n) + (b"more %d;" % n if n % 3 == 0 else b"")
        for n in range(100)
    )
    assert received == expected
