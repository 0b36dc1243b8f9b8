"""The landing sensor on moto's S3: a new partition and a re-delivered one are each run once."""

import gzip
import time

import dagster as dg
import pytest
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from upsert_pipeline.components.feed import FeedComponent
from upsert_pipeline.resources import DeltaMergeResource, LandingResource
from upsert_pipeline_tests.conftest import partition_materializations
from upsert_pipeline_tests.object_store import moto_server, s3_client, s3_env
from upsert_pipeline_tests.test_landing_layouts import SHIPMENTS

BUCKET = "landing"


@pytest.fixture(scope="module")
def endpoint():
    with moto_server() as url:
        yield url


def _csv(rows):
    lines = ["shipment_id;ship_date;carrier;weight_kg", *rows]
    return gzip.compress("\n".join(lines).encode())


def test_the_sensor_runs_new_and_redelivered_partitions_once(endpoint, monkeypatch, tmp_path):
    for name, value in s3_env(endpoint).items():
        monkeypatch.setenv(name, value)
    client = s3_client(endpoint)
    client.create_bucket(Bucket=BUCKET)
    (tmp_path / "shipments").mkdir()
    (tmp_path / "shipments" / "defs.yaml").write_text(SHIPMENTS)
    component = FeedComponent.from_yaml_file(tmp_path / "shipments" / "defs.yaml")
    landing = LandingResource(uri=f"s3://{BUCKET}/feeds")
    built = component.build_defs(None)  # type: ignore[arg-type]
    feed_defs = dg.Definitions.merge(
        built,
        dg.Definitions(
            resources={"landing": landing, "lake": DeltaMergeResource(lake_uri=str(tmp_path))}
        ),
    )
    [sensor] = built.sensors
    assert sensor.name == "shipments_landing"
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED

    def put(day, part, rows):
        key = f"feeds/shipments/dt={day}/part-{part}.csv.gz"
        client.put_object(Bucket=BUCKET, Key=key, Body=_csv(rows))

    def tick(cursor):
        context = dg.build_sensor_context(
            cursor=cursor, resources={"landing": landing}, definitions=feed_defs
        )
        result = sensor.evaluate_tick(context)
        return result.run_requests or [], result.cursor

    put("2019-01-02", 0, ["1;2019-01-02;dhl;1"])
    put("2019-01-02", 1, ["2;2019-01-02;dhl;1"])
    put("2019-01-03", 0, ["3;2019-01-03;dhl;1"])
    client.put_object(Bucket=BUCKET, Key="feeds/shipments/README.txt", Body=b"not a batch")
    # Two days arrived in one tick: one run over both.
    [first], cursor = tick(None)
    assert first.tags[ASSET_PARTITION_RANGE_START_TAG] == "2019-01-02"
    assert first.tags[ASSET_PARTITION_RANGE_END_TAG] == "2019-01-03"
    # The ranged request runs as one run: each day merged and recorded as its own partition.
    with dg.instance_for_test() as instance:
        run = feed_defs.resolve_job_def("ingest_shipments").execute_in_process(
            tags=first.tags, instance=instance
        )
        assert run.success
        recorded = partition_materializations(instance, "shipments", ["2019-01-02", "2019-01-03"])
    inserted = {
        day: records[0].asset_materialization.metadata["upsert/rows_inserted"].value
        for day, records in recorded.items()
    }
    assert inserted == {"2019-01-02": 2, "2019-01-03": 1}
    assert len({r.run_id for records in recorded.values() for r in records}) == 1
    # Nothing changed: nothing runs.
    assert tick(cursor)[0] == []
    # A new day and a re-delivered, non-adjacent day: each its own partition's run.
    time.sleep(1.1)  # S3's LastModified has a one-second resolution
    put("2019-01-02", 1, ["2;2019-01-02;ups;2", "4;2019-01-02;dhl;3"])
    put("2019-01-06", 0, ["5;2019-01-06;dhl;1"])
    requests, cursor = tick(cursor)
    assert sorted(r.partition_key for r in requests) == ["2019-01-02", "2019-01-06"]
    assert len({r.run_key for r in requests}) == 2 and first.run_key not in {
        r.run_key for r in requests
    }
    assert tick(cursor)[0] == []
    # The same file delivered again with the same bytes still counts as a re-delivery
    # (a new LastModified): the partition converges to it again.
    time.sleep(1.1)
    put("2019-01-06", 0, ["5;2019-01-06;dhl;1"])
    [again], _ = tick(cursor)
    assert again.partition_key == "2019-01-06"
