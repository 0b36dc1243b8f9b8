"""Section 5: the count costs of section 1 against S3 on loopback with a fixed added latency.

moto's S3 server runs as a subprocess on a free ``127.0.0.1`` port; ``bench.latency_proxy``
sits in front of it and holds every request for a fixed time. Tables are built locally and
uploaded straight to moto (not through the proxy); everything measured goes through the proxy.
Both processes are stopped when the section ends, and each exits by itself after a time limit.
"""

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import boto3

from bench.count_cost import CountPlan, measure
from bench.data import TableSpec, build_table

BUCKET = "lake"
_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass(frozen=True)
class RemotePlan:
    """What to measure against the object store.

    Attributes:
        specs: The tables to build and count.
        count: How to measure each (as in section 1).
        delay_ms: Latency added to every request.
        lifetime_s: Seconds after which the servers exit by themselves.
    """

    specs: tuple[TableSpec, ...]
    count: CountPlan
    delay_ms: float
    lifetime_s: float


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process {process.args!r} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def s3_with_latency(delay_ms: float, lifetime_s: float) -> Iterator[tuple[int, int]]:
    """Starts moto's S3 server and the latency proxy; yields ``(moto_port, proxy_port)``."""
    moto_port, proxy_port = free_port(), free_port()
    moto = subprocess.Popen(
        [
            "timeout",
            str(int(lifetime_s)),
            sys.executable,
            "-c",
            "from moto.server import main; main()",
            "-H",
            "127.0.0.1",
            "-p",
            str(moto_port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proxy: subprocess.Popen[bytes] | None = None
    try:
        _wait_for_port(moto_port, moto)
        proxy = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.latency_proxy",
                "--port",
                str(proxy_port),
                "--upstream",
                str(moto_port),
                "--delay-ms",
                str(delay_ms),
                "--lifetime-s",
                str(lifetime_s),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(proxy_port, proxy)
        yield moto_port, proxy_port
    finally:
        if proxy is not None:
            _stop(proxy)
        _stop(moto)


def storage_options(port: int) -> dict[str, str]:
    """delta-rs / polars options for the S3 endpoint on ``port`` (plain HTTP, one writer).

    moto answers conditional PUTs (``If-None-Match: *``), so delta-rs commits with
    ``conditional_put=etag`` and needs no locking provider or unsafe rename.
    """
    return {
        **_CREDENTIALS,
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ALLOW_HTTP": "true",
        "conditional_put": "etag",
    }


def _client(port: int) -> Any:
    """An S3 client of the moto server on loopback ``port``."""
    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id=_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def _upload(local: Path, prefix: str, port: int) -> int:
    client = _client(port)
    files = [path for path in local.rglob("*") if path.is_file()]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(
                lambda path: client.upload_file(
                    str(path), BUCKET, f"{prefix}/{path.relative_to(local).as_posix()}"
                ),
                files,
            )
        )
    return len(files)


def run(root: str, plan: RemotePlan) -> dict[str, Any]:
    """Builds each table locally, uploads it to moto, and measures its counts through the proxy."""
    results = []
    with s3_with_latency(plan.delay_ms, plan.lifetime_s) as (moto_port, proxy_port):
        client = _client(moto_port)
        client.create_bucket(Bucket=BUCKET)
        for spec in plan.specs:
            local = Path(root) / spec.name
            start = time.perf_counter()
            build_table(str(local), spec)
            objects = _upload(local, spec.name, moto_port)
            setup_s = time.perf_counter() - start
            report = measure(
                f"s3://{BUCKET}/{spec.name}",
                spec,
                plan.count,
                storage_options=storage_options(proxy_port),
            )
            report["build_and_upload_s"] = setup_s
            report["objects_uploaded"] = objects
            results.append(report)
    return {
        "delay_ms": plan.delay_ms,
        "store": "moto S3 server (subprocess, 127.0.0.1) behind bench.latency_proxy",
        "plan": asdict(plan.count),
        "tables": results,
    }
