"""Feeds of their own layout, format and partitions: gzipped CSV in dt= folders with several files
per day from 2019, a monthly JSON feed; each materialized into its own table."""

import datetime as dt
import gzip
import json
import re
import textwrap

import dagster as dg
import pytest
from deltalake import DeltaTable

from upsert_pipeline.assets import build_upsert_asset
from upsert_pipeline.delta import ColumnTypeError, DuplicateKeyError
from upsert_pipeline.feeds import load_feed
from upsert_pipeline.landing import LandingFileNotFoundError
from upsert_pipeline.partitions import feed_partitions
from upsert_pipeline.resources import DeltaMergeResource, LandingResource

SHIPMENTS = """\
type: upsert_pipeline.components.FeedComponent
attributes:
  name: shipments
  description: Shipments landing as gzipped CSV, several files a day.
  columns:
    - {name: shipment_id, type: int64, nullable: false}
    - {name: ship_date, type: date32, nullable: false}
    - {name: carrier, type: string}
    - {name: weight_kg, type: "decimal128(10, 3)"}
  keys: [shipment_id]
  partition_column: ship_date
  partitions: {start: "2019-01-01", cadence: daily}
  landing:
    path: "shipments/dt={date}/*.csv.gz"
    format: csv
    csv: {delimiter: ";", header: true}
  sensor: {minimum_interval_seconds: 30}
"""

EVENTS = """\
type: upsert_pipeline.components.FeedComponent
attributes:
  name: events
  description: Monthly events as newline-delimited JSON.
  columns:
    - {name: event_id, type: string, nullable: false}
    - {name: month, type: date32, nullable: false}
    - {name: count, type: int64}
  keys: [event_id]
  partition_column: month
  partitions: {start: "2019-01-01", cadence: monthly, timezone: Europe/Berlin}
  landing: {path: "events/{year}/{month}/*.json", format: json}
"""


def write_feed(defs_dir, text):
    name = re.search(r"name: (\w+)", text)[1]
    (defs_dir / name).mkdir(parents=True, exist_ok=True)
    (defs_dir / name / "defs.yaml").write_text(text)
    return load_feed(name, defs_dir=defs_dir)


def land_csv(landing, day, part, rows, delimiter=";"):
    folder = landing / "shipments" / f"dt={day}"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [delimiter.join(["shipment_id", "ship_date", "carrier", "weight_kg"])]
    lines += [delimiter.join(str(v) for v in row) for row in rows]
    (folder / f"part-{part:04d}.csv.gz").write_bytes(gzip.compress("\n".join(lines).encode()))


@pytest.fixture
def shipments(tmp_path):
    return write_feed(tmp_path / "defs", SHIPMENTS)


def _materialize(feed, key, landing, lake, instance):
    return dg.materialize(
        [build_upsert_asset(feed)],
        partition_key=key,
        resources={
            "landing": LandingResource(uri=str(landing)),
            "lake": DeltaMergeResource(lake_uri=str(lake)),
        },
        instance=instance,
        raise_on_error=False,
    )


def test_gzipped_csv_in_dt_folders_with_several_files_a_day_from_its_own_start(shipments, tmp_path):
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    land_csv(
        landing, "2019-01-02", 0, [(1, "2019-01-02", "dhl", "1.5"), (2, "2019-01-02", "ups", "")]
    )
    land_csv(landing, "2019-01-02", 1, [(3, "2019-01-02", "dhl", "0.250")])
    land_csv(landing, "2019-01-03", 0, [(4, "2019-01-03", "dhl", "9")])
    assert feed_partitions(shipments.partitions).get_first_partition_key() == "2019-01-01"

    with dg.instance_for_test() as instance:
        result = _materialize(shipments, "2019-01-02", landing, lake, instance)
    assert result.success
    [materialization] = result.asset_materializations_for_node("shipments")
    assert materialization.metadata["upsert/rows_inserted"].value == 3
    table = DeltaTable(str(lake / "shipments")).to_pyarrow_table()
    assert sorted(table["shipment_id"].to_pylist()) == [1, 2, 3]  # not day 3's row
    assert table.schema.field("weight_kg").type == shipments.schema.field("weight_kg").type
    assert DeltaTable(str(lake / "shipments")).metadata().partition_columns == ["ship_date"]


def test_a_bad_csv_value_names_feed_partition_file_and_line(shipments, tmp_path):
    landing = tmp_path / "landing"
    land_csv(landing, "2019-01-02", 0, [(1, "2019-01-02", "dhl", "1")])
    land_csv(
        landing, "2019-01-02", 1, [(2, "2019-01-02", "dhl", "1"), ("x7", "2019-01-02", "ups", "2")]
    )
    with pytest.raises(ColumnTypeError) as raised:
        LandingResource(uri=str(landing)).read_batch(shipments, "2019-01-02")
    message = str(raised.value)
    assert message.startswith("shipments 2019-01-02")
    assert "dt=2019-01-02/part-0001.csv.gz line 3" in message
    assert "shipment_id" in message and "'x7'" in message


def test_a_key_repeated_across_two_files_is_refused(shipments, tmp_path):
    landing = tmp_path / "landing"
    land_csv(landing, "2019-01-02", 0, [(1, "2019-01-02", "dhl", "1")])
    land_csv(landing, "2019-01-02", 1, [(1, "2019-01-02", "ups", "2")])
    with pytest.raises(DuplicateKeyError, match=r"shipments 2019-01-02 .*part-0001"):
        LandingResource(uri=str(landing)).read_batch(shipments, "2019-01-02")


def test_a_partition_without_files_is_its_own_error_naming_the_glob(shipments, tmp_path):
    with pytest.raises(
        LandingFileNotFoundError, match=re.escape("shipments 2019-01-05: no landing file")
    ) as raised:
        LandingResource(uri=str(tmp_path)).read_batch(shipments, "2019-01-05")
    assert "shipments/dt=2019-01-05/*.csv.gz" in str(raised.value)


def test_a_monthly_json_feed_merges_each_month_into_its_own_partition(tmp_path):
    events = write_feed(tmp_path / "defs", EVENTS)
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    for month, rows in {"03": 3, "04": 2}.items():
        folder = landing / "events" / "2019" / month
        folder.mkdir(parents=True)
        lines = [
            json.dumps({"event_id": f"{month}-{n}", "month": f"2019-{month}-01", "count": n})
            for n in range(rows)
        ]
        (folder / "part-0.json").write_text("\n".join(lines) + "\n")
    keys = feed_partitions(events.partitions).get_partition_keys()
    assert keys[:3] == ["2019-01-01", "2019-02-01", "2019-03-01"]

    with dg.instance_for_test() as instance:
        for key in ("2019-03-01", "2019-04-01"):
            assert _materialize(events, key, landing, lake, instance).success
        again = _materialize(events, "2019-03-01", landing, lake, instance)
    [materialization] = again.asset_materializations_for_node("events")
    assert materialization.metadata["dagster/partition_row_count"].value == 3
    assert materialization.metadata["upsert/rows_inserted"].value == 0
    table = DeltaTable(str(lake / "events")).to_pyarrow_table()
    assert sorted(set(table["month"].to_pylist())) == [dt.date(2019, 3, 1), dt.date(2019, 4, 1)]


def test_a_bad_json_line_is_named(tmp_path):
    events = write_feed(tmp_path / "defs", EVENTS)
    folder = tmp_path / "landing" / "events" / "2019" / "03"
    folder.mkdir(parents=True)
    (folder / "a.json").write_text(
        textwrap.dedent("""\
        {"event_id": "a", "month": "2019-03-01", "count": 1}
        {"event_id": "b", "month": "2019-03-01", "count": 2
        """)
    )
    with pytest.raises(Exception, match=r"events 2019-03-01: landing file .*a\.json line 2"):
        LandingResource(uri=str(tmp_path / "landing")).read_batch(events, "2019-03-01")


def test_a_json_value_of_the_wrong_type_names_its_line(tmp_path):
    events = write_feed(tmp_path / "defs", EVENTS)
    folder = tmp_path / "landing" / "events" / "2019" / "03"
    folder.mkdir(parents=True)
    rows = [{"event_id": str(n), "month": "2019-03-01", "count": n} for n in range(5)]
    rows[3]["count"] = "three"
    (folder / "a.json").write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(ColumnTypeError, match=r"events 2019-03-01: landing file .*a\.json line 4"):
        LandingResource(uri=str(tmp_path / "landing")).read_batch(events, "2019-03-01")
