"""A loopback TCP proxy that adds a fixed latency to every HTTP request it forwards.

``python -m bench.latency_proxy --port P --upstream U --delay-ms D --lifetime-s T`` listens on
``127.0.0.1:P`` and forwards to ``127.0.0.1:U``. On each connection, the first bytes the client
sends after the server last answered (the start of a request, keep-alive connections included)
are held for ``D`` ms before they are forwarded; request bodies and responses are not delayed
further. So every request pays one fixed round trip, as it does against a remote object store,
while many requests in flight each pay it at once. The proxy exits by itself after ``T`` seconds.
"""

import argparse
import asyncio
import contextlib

_CHUNK = 1 << 16


class _Turn:
    """Whose turn it is on one connection: a new request starts when the client speaks next."""

    def __init__(self) -> None:
        self.request_started = False


async def _client_to_server(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, turn: _Turn, delay: float
) -> None:
    while data := await reader.read(_CHUNK):
        if not turn.request_started:
            turn.request_started = True
            await asyncio.sleep(delay)
        writer.write(data)
        await writer.drain()
    with contextlib.suppress(OSError):
        writer.write_eof()


async def _server_to_client(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, turn: _Turn
) -> None:
    while data := await reader.read(_CHUNK):
        turn.request_started = False
        writer.write(data)
        await writer.drain()
    writer.close()


async def _serve(port: int, upstream: int, delay: float, lifetime: float) -> None:
    async def handle(
        client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", upstream)
        except OSError:
            client_writer.close()
            return
        turn = _Turn()
        try:
            await asyncio.gather(
                _client_to_server(client_reader, server_writer, turn, delay),
                _server_to_client(server_reader, client_writer, turn),
            )
        except (ConnectionError, OSError):
            pass
        finally:
            server_writer.close()
            client_writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    async with server:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.serve_forever(), timeout=lifetime)


def main() -> None:
    """Parses the arguments and serves until the lifetime is over."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--lifetime-s", type=float, required=True)
    args = parser.parse_args()
    asyncio.run(_serve(args.port, args.upstream, args.delay_ms / 1000, args.lifetime_s))


if __name__ == "__main__":
    main()
