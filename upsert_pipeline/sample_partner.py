"""A sample table "another engine" writes, for the observed-table example (``defs/partner_events``).

``python -m upsert_pipeline.sample_partner [data/partner/events]`` writes four commits with plain
delta-rs calls and none of the pipeline's markers: a first write, an append, a MERGE and a DELETE,
as a partner's job would leave them. Observe ``partner_events`` in the UI to see
each commit with its counts. Deterministic; an existing table is left alone.
"""

import argparse
import datetime as dt
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_URI = str(PROJECT_DIR / "data" / "partner" / "events")


def _events(ids: range, day: dt.date, kind: str) -> pa.Table:
    return pa.table(
        {
            "event_id": pa.array(list(ids), pa.int64()),
            "event_date": pa.array([day] * len(ids), pa.date32()),
            "kind": pa.array([kind] * len(ids), pa.string()),
        }
    )


def write_partner_table(uri: str) -> int:
    """Writes the sample commits into a new table at ``uri``; returns its latest version."""
    try:
        return DeltaTable(uri).version()
    except TableNotFoundError:
        pass
    first, second = dt.date(2026, 11, 1), dt.date(2026, 11, 2)
    write_deltalake(uri, _events(range(100), first, "view"), partition_by=["event_date"])
    write_deltalake(uri, _events(range(100, 160), second, "view"), mode="append")
    table = DeltaTable(uri)
    table.merge(
        _events(range(150, 180), second, "click"),
        predicate="t.event_id = s.event_id",
        source_alias="s",
        target_alias="t",
    ).when_matched_update_all().when_not_matched_insert_all().execute()
    table.delete("event_id < 10")
    return table.version()


def main(argv: list[str] | None = None) -> None:
    """Writes the sample partner table (``data/partner/events`` by default)."""
    parser = argparse.ArgumentParser(prog="python -m upsert_pipeline.sample_partner")
    parser.add_argument("uri", nargs="?", default=DEFAULT_URI)
    args = parser.parse_args(argv)
    print(f"{args.uri}: version {write_partner_table(args.uri)}")


if __name__ == "__main__":
    main()
