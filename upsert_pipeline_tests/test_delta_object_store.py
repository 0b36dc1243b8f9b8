"""Upserts and counts on S3 (moto's server on loopback), configured by ``storage_options`` alone.

No ``AWS_*`` variable is set in the environment: if any function dropped its ``storage_options``,
delta-rs would find no endpoint or credentials and fail.
"""

from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from upsert_pipeline.delta import read_row_counts, upsert
from upsert_pipeline_tests.conftest import DAY, OTHER_DAY, order_batch
from upsert_pipeline_tests.processes import free_port

BUCKET = "lake"


@pytest.fixture
def s3_options(monkeypatch) -> Iterator[dict[str, str]]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        options = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).create_bucket(Bucket=BUCKET)
        yield options
    finally:
        server.stop()


def test_upserts_and_counts_on_s3_use_the_storage_options(s3_options):
    uri = f"s3://{BUCKET}/orders"
    upsert(
        uri,
        order_batch([1, 2, 3]),
        keys=["order_id"],
        partition={"order_date": DAY},
        storage_options=s3_options,
    )
    result = upsert(
        uri,
        order_batch([3, 4], day=OTHER_DAY),
        keys=["order_id"],
        partition={"order_date": OTHER_DAY},
        storage_options=s3_options,
    )

    assert (result.inserted, result.partition_rows, result.table_rows) == (2, 2, 5)
    counts = read_row_counts(uri, partition={"order_date": DAY}, storage_options=s3_options)
    assert (counts.partition_rows, counts.table_rows, counts.version) == (3, 5, result.version)
    older = read_row_counts(uri, version=result.read_version, storage_options=s3_options)
    assert older.table_rows == 3
