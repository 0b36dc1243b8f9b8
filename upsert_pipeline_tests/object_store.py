"""moto's S3 server on loopback as the tests' object store, and a proxy that strips If-None-Match.

``moto_server()`` starts moto's own ``moto_server`` command (a dev dependency) as a subprocess on a
free ``127.0.0.1`` port, so Dagster subprocesses reach it as they would MinIO; ``s3_env`` gives
the standard ``AWS_*`` variables of that endpoint, the only configuration the code under test
gets. ``header_proxy(..., strip=True)`` stands in for a store (or a proxy) that ignores
``If-None-Match: *``: it forwards every request to moto without that header; with
``strip=False`` it only records which requests carried it.
"""

import contextlib
import http.client
import http.server
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3

from upsert_pipeline_tests.processes import free_port

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
REGION = "us-east-1"
START_TIMEOUT_S = 30.0
LIFETIME_S = 900


def _wait_for_port(port: int, process: "subprocess.Popen[bytes]") -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise TimeoutError(f"moto_server not listening on 127.0.0.1:{port} after {START_TIMEOUT_S}s")


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Runs moto's S3 server on a free loopback port; yields its endpoint URL.

    The server is ``timeout``-bounded, so it exits by itself even if the test process dies.
    """
    port = free_port()
    executable = Path(sys.executable).with_name("moto_server")
    process = subprocess.Popen(
        ["timeout", str(LIFETIME_S), str(executable), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def s3_env(endpoint: str) -> dict[str, str]:
    """The standard variables of an S3-compatible store at ``endpoint`` (plain HTTP)."""
    return {
        **CREDENTIALS,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
    }


def s3_client(endpoint: str):
    """A boto3 client of ``endpoint``, for setting up and inspecting buckets behind the code."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def new_bucket(endpoint: str, prefix: str = "lake") -> str:
    """Creates a bucket with a unique name (tests share one server) and returns the name."""
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


def keys_under(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    """Every object key in ``bucket`` under ``prefix``, read straight from the store."""
    pages = s3_client(endpoint).get_paginator("list_objects_v2")
    return [
        item["Key"]
        for page in pages.paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
    ]


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    """Forwards one request to the upstream store, ``If-None-Match`` stripped if asked."""

    protocol_version = "HTTP/1.1"
    upstream: tuple[str, int] = ("127.0.0.1", 0)
    strip: bool = True
    conditional: list[str]

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {
            k: v
            for k, v in self.headers.items()
            if not (self.strip and k.lower() == "if-none-match")
        }
        if "If-None-Match" in self.headers:
            self.conditional.append(self.path)
        connection = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        finally:
            connection.close()
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def header_proxy(endpoint: str, *, strip: bool) -> Iterator[tuple[str, list[str]]]:
    """A loopback proxy to ``endpoint``; with ``strip`` it drops ``If-None-Match`` from requests.

    Yields:
        The proxy's endpoint URL, and the paths of the requests that carried ``If-None-Match``
        (stripped or not), in order.
    """
    host, port = endpoint.removeprefix("http://").split(":")
    conditional: list[str] = []
    handler = type(
        "Handler",
        (_ProxyHandler,),
        {"upstream": (host, int(port)), "strip": strip, "conditional": conditional},
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", conditional
    finally:
        server.shutdown()
        server.server_close()
