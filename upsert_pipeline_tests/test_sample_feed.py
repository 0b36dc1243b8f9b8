"""Sample batches for any declared feed load through its own layout, format and partitions."""

import pytest

from upsert_pipeline.partitions import feed_partitions, partition_start
from upsert_pipeline.resources import LandingResource
from upsert_pipeline.sample_feed import ROWS_PER_FILE, write_samples
from upsert_pipeline_tests.test_landing_layouts import EVENTS, SHIPMENTS, write_feed

COMPOSITE = """\
type: upsert_pipeline.components.FeedComponent
attributes:
  name: readings
  description: Hourly sensor readings keyed by (sensor, seq).
  columns:
    - {name: sensor, type: string, nullable: false}
    - {name: seq, type: int32, nullable: false}
    - {name: taken_at, type: "timestamp[us, tz=UTC]"}
    - {name: ok, type: bool}
    - {name: value, type: double}
  keys: [sensor, seq]
  partitions: {start: "2026-11-01 00:00", cadence: hourly}
  landing: {path: "readings/{date}/{hour}.parquet"}
"""


@pytest.mark.parametrize("text", [SHIPMENTS, EVENTS, COMPOSITE])
def test_samples_of_any_feed_read_back_through_its_layout(tmp_path, text):
    feed = write_feed(tmp_path / "defs", text)
    written = write_samples(tmp_path / "landing", feed, partitions=2)
    files = 2 if "*" in feed.layout.path else 1
    assert len(written) == 2 * files
    landing = LandingResource(uri=str(tmp_path / "landing"))
    for key in feed_partitions(feed.partitions).get_partition_keys()[:2]:
        batch = landing.read_batch(feed, key)
        assert batch.num_rows == files * ROWS_PER_FILE
        assert batch.schema == feed.schema
        if feed.partition_column:
            # Every row holds its partition's start: the merge accepts it as that partition's.
            assert set(batch[feed.partition_column].to_pylist()) == {
                partition_start(feed, key).date()
            }
