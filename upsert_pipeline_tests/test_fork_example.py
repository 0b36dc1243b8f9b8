"""The README's "Fork this template" example, run exactly as written, so the section cannot rot.

The test reads the python block under that heading from README.md, executes it, and materializes
the asset it builds on temporary landing and lake folders: a first load, then a re-delivery.
"""

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from upsert_pipeline.checks import (
    COUNTS_RECONCILE,
    NO_OUT_OF_BAND_WRITES,
    NOT_EMPTY,
    VOLUME_WITHIN_HISTORY,
    VolumeBand,
)
from upsert_pipeline.feeds import FEEDS, Feed
from upsert_pipeline.partitions import daily_partitions
from upsert_pipeline.resources import DeltaMergeResource, LandingResource

README = Path(__file__).resolve().parent.parent / "README.md"
HEADING = "## Fork this template"
DAY = "2026-11-02"
ROWS = 20


def fork_example_code(readme: str) -> str:
    """The one python code block of the README's fork section."""
    _, found, rest = readme.partition(f"\n{HEADING}\n")
    assert found, f"README.md has no {HEADING!r} section"
    section = rest.split("\n## ", 1)[0]
    blocks = re.findall(r"^```python\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1, f"expected one python block under {HEADING!r}, found {len(blocks)}"
    return str(blocks[0])


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    """The names the README's example defines, after running it as a module would."""
    namespace: dict[str, Any] = {"__name__": "readme_fork_example"}
    code = fork_example_code(README.read_text())
    exec(compile(code, f"{README}#fork-this-template", "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def feed(example: dict[str, Any]) -> Feed:
    [feed] = [value for value in example.values() if isinstance(value, Feed)]
    assert feed not in FEEDS
    return feed


def _value(feed: Feed, field: pa.Field, row_id: int, day: dt.date, revision: int) -> object:
    """A value of the field's type: the id for keys, the day for dates, else set by revision."""
    kind = field.type
    if field.name in feed.keys:
        assert pa.types.is_integer(kind), f"integer keys only in this test: {field}"
        return row_id
    if pa.types.is_integer(kind):
        return row_id * 10 + revision
    if pa.types.is_date(kind):
        return day
    if pa.types.is_decimal(kind):
        return Decimal(row_id * 100 + revision).scaleb(-kind.scale)
    if pa.types.is_timestamp(kind):
        return dt.datetime.combine(day, dt.time(revision % 24), tzinfo=dt.UTC)
    if pa.types.is_floating(kind):
        return row_id + revision / 10
    if pa.types.is_string(kind):
        return f"{field.name}-{row_id}-{revision}"
    raise AssertionError(f"no sample value for {field.name}: {kind}")


def _write_batch(landing: Path, feed: Feed, revisions: dict[int, int]) -> None:
    """The day's landing file of ``feed``: one row per id, its non-key values set by revision."""
    day = dt.date.fromisoformat(DAY)
    rows = [
        {field.name: _value(feed, field, row_id, day, revision) for field in feed.schema}
        for row_id, revision in revisions.items()
    ]
    path = landing / feed.name / f"{DAY}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=feed.schema), path)


def test_the_example_adds_a_partitioned_asset_with_its_checks_to_the_code_location(
    example: dict[str, Any], feed: Feed
) -> None:
    defs = example["defs"]
    assert isinstance(defs, dg.Definitions)
    dg.Definitions.validate_loadable(defs)

    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {feed.name, "orders", "customers"} <= keys
    asset = defs.resolve_assets_def(feed.name)
    assert asset.partitions_def == daily_partitions
    checks = {key.name for key in graph.asset_check_keys if key.asset_key == asset.key}
    assert checks >= {COUNTS_RECONCILE, NO_OUT_OF_BAND_WRITES, VOLUME_WITHIN_HISTORY, NOT_EMPTY}
    # The example's thresholds are the ones its volume check judges with.
    [band] = [value for value in example.values() if isinstance(value, VolumeBand)]
    volume = graph.get_check_spec(dg.AssetCheckKey(asset.key, VOLUME_WITHIN_HISTORY))
    assert f"± {band.k} spreads" in (volume.description or "")
    assert f"last {band.history} materializations" in (volume.description or "")


def test_the_example_asset_upserts_a_day_and_reports_its_counts(
    example: dict[str, Any], feed: Feed, tmp_path: Path
) -> None:
    defs = example["defs"]
    asset = defs.get_assets_def(feed.name)
    checks = [
        defs.get_asset_checks_def(dg.AssetCheckKey(asset.key, name))
        for name in (VOLUME_WITHIN_HISTORY, NOT_EMPTY)
    ]
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    resources = {
        "landing": LandingResource(uri=str(landing)),
        "lake": DeltaMergeResource(lake_uri=str(lake)),
    }

    def materialize(instance: dg.DagsterInstance) -> tuple[dict[str, Any], dict[str, bool]]:
        result = dg.materialize(
            [asset, *checks], partition_key=DAY, resources=resources, instance=instance
        )
        assert result.success
        [materialization] = result.asset_materializations_for_node(feed.name)
        values = {key: value.value for key, value in materialization.metadata.items()}
        verdicts = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        return values, verdicts

    with dg.instance_for_test() as instance:
        _write_batch(landing, feed, dict.fromkeys(range(1, ROWS + 1), 0))
        first, verdicts = materialize(instance)
        assert first["upsert/rows_inserted"] == first["dagster/partition_row_count"] == ROWS
        assert first["upsert/rows_updated"] == first["upsert/rows_unchanged"] == 0
        assert all(verdicts.values()) and len(verdicts) == 4, verdicts

        # A re-delivery: two rows corrected, one late row, the rest sent again unchanged.
        _write_batch(landing, feed, {**dict.fromkeys(range(1, ROWS + 2), 0), 3: 1, 7: 1})
        second, verdicts = materialize(instance)
        assert second["upsert/rows_inserted"] == 1
        assert second["upsert/rows_updated"] == 2
        assert second["upsert/rows_unchanged"] == ROWS - 2
        assert second["dagster/partition_row_count"] == ROWS + 1
        assert all(verdicts.values()), verdicts
    assert (lake / feed.name / "_delta_log").is_dir()
