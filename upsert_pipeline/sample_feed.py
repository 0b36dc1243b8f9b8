"""Plausible landing batches for any declared feed, so a fork can be tried before real data lands.

``python -m upsert_pipeline.sample_feed shipments`` (or ``make sample-data FEED=shipments``)
reads ``defs/shipments/defs.yaml`` and writes, for its first partitions, files that fit it: every
declared column with values of its type (unique keys, composite keys included; the partition
column holding the partition's start; about 3% nulls where nullable), in the declared format
(parquet, CSV with its delimiter and header, newline-delimited JSON), compressed as the path's
suffix says, at the paths its ``landing.path`` names (a glob gets two files per partition).
Deterministic: each partition is seeded by its key.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import random
import zlib
from decimal import Decimal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from upsert_pipeline.delta.storage import arrow_filesystem, storage_options_for
from upsert_pipeline.delta.uris import DEFAULT_URI_POLICY
from upsert_pipeline.feeds import Feed, load_feed
from upsert_pipeline.landing.layout import compression_of
from upsert_pipeline.partitions import feed_partitions, partition_start, start_value

ROWS_PER_FILE = 50
_SPAN = {"hourly": 3600, "daily": 86_400, "weekly": 7 * 86_400, "monthly": 28 * 86_400}


def _value(field: pa.Field, feed: Feed, row: int, start: dt.datetime, rng: random.Random) -> object:
    """One plausible value of ``field`` for row ``row`` of the partition starting at ``start``."""
    kind = field.type
    if field.name == feed.partition_column:
        return start_value(feed, start)
    if field.name in feed.keys:
        if pa.types.is_integer(kind):
            return row
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            return f"{field.name}-{row:06d}"
    if field.nullable and rng.random() < 0.03:
        return None
    seconds = rng.randrange(_SPAN[feed.partitions.cadence])
    if pa.types.is_boolean(kind):
        return rng.random() < 0.5
    if pa.types.is_integer(kind):
        return rng.randrange(0, 127 if kind.bit_width == 8 else 10_000)
    if pa.types.is_floating(kind):
        return round(rng.uniform(0, 1000), 3)
    if pa.types.is_decimal(kind):
        digits = min(kind.precision - kind.scale, 6)
        return Decimal(rng.randrange(10 ** (digits + kind.scale))).scaleb(-kind.scale)
    if pa.types.is_date(kind):
        return (start + dt.timedelta(seconds=seconds)).date()
    if pa.types.is_timestamp(kind):
        moment = start + dt.timedelta(seconds=seconds)
        return moment.replace(tzinfo=dt.UTC) if kind.tz else moment
    if pa.types.is_binary(kind):
        return rng.randbytes(8)
    return f"{field.name}-{rng.randrange(1000)}"


def _batch(feed: Feed, key: str, start: dt.datetime, part: int, first_row: int) -> pa.Table:
    rng = random.Random(zlib.crc32(f"{feed.name}:{key}:{part}".encode()))
    rows = range(first_row, first_row + ROWS_PER_FILE)
    columns = {
        field.name: [_value(field, feed, row, start, rng) for row in rows] for field in feed.schema
    }
    return pa.table(columns, schema=feed.schema)


def _encode(feed: Feed, table: pa.Table) -> bytes:
    layout = feed.layout
    if layout.format == "parquet":
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue()
    if layout.format == "csv":
        sink = io.BytesIO()
        options = pacsv.WriteOptions(
            include_header=layout.csv.header, delimiter=layout.csv.delimiter
        )
        pacsv.write_csv(table, sink, write_options=options)
        return sink.getvalue()
    lines = [json.dumps(row, default=str) for row in table.to_pylist()]
    return ("\n".join(lines) + "\n").encode()


def write_samples(landing: str | os.PathLike[str], feed: Feed, *, partitions: int = 3) -> list[str]:
    """Writes sample files of ``feed``'s first ``partitions`` partitions under ``landing``.

    Returns:
        The URIs written.
    """
    root = DEFAULT_URI_POLICY.check(os.fspath(landing), what="landing").rstrip("/")
    keys = feed_partitions(feed.partitions).get_partition_keys()[:partitions]
    files = 2 if set("*?[") & set(feed.layout.path) else 1
    written = []
    for index, key in enumerate(keys):
        start = partition_start(feed, key)
        glob = feed.layout.partition_glob(start, key)
        for part in range(files):
            relative = glob.replace("**/", "").replace("*", f"part-{part:04d}").replace("?", "0")
            table = _batch(feed, key, start, part, 1 + (index * files + part) * ROWS_PER_FILE)
            uri = f"{root}/{relative}"
            filesystem, path = arrow_filesystem(uri, storage_options_for(root))
            folder = path.rsplit("/", 1)[0]
            filesystem.create_dir(folder, recursive=True)
            with filesystem.open_output_stream(path, compression=compression_of(path)) as out:
                out.write(_encode(feed, table))
            written.append(uri)
    return written


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m upsert_pipeline.sample_feed FEED [--partitions N]``."""
    from upsert_pipeline.resources import DEFAULT_LANDING_URI, LANDING_URI_ENV

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("feed", help="a feed of the defs folder (defs/<feed>/defs.yaml)")
    parser.add_argument("--partitions", type=int, default=3, help="how many, from its start")
    parser.add_argument(
        "--landing",
        default=os.environ.get(LANDING_URI_ENV) or DEFAULT_LANDING_URI,
        help="a folder or an object-store prefix such as s3://landing/feeds",
    )
    args = parser.parse_args(argv)
    paths = write_samples(args.landing, load_feed(args.feed), partitions=args.partitions)
    for path in paths:
        print(path)
    print(f"wrote {len(paths)} sample files of {args.feed} under {args.landing}")


if __name__ == "__main__":
    main()
