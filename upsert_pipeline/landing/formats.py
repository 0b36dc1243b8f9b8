"""Reading one landing file of a declared format into Arrow, with errors that name the file and,
for CSV and JSON, the line.

CSV and JSON files are decompressed as their suffix says (``.gz``, ``.bz2``, ``.zst``, ``.lz4``)
and their declared columns are parsed straight into the declared types (a value that does not
convert is a ``ColumnTypeError`` naming its line); parquet files are checked for their framing
first, so an empty, non-parquet or cut-off upload gets its own named error.
"""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.json as pajson
import pyarrow.parquet as pq

from upsert_pipeline.delta import ColumnTypeError
from upsert_pipeline.landing.errors import (
    CorruptParquetError,
    EmptyLandingFileError,
    LandingParseError,
    NotParquetError,
    TruncatedParquetError,
)
from upsert_pipeline.landing.layout import CsvOptions, LandingLayout, compression_of

PARQUET_MAGIC = b"PAR1"
# A parquet file is at least: magic, a footer length (4 bytes), magic.
_MIN_PARQUET_BYTES = 2 * len(PARQUET_MAGIC) + 4
_CSV_CONVERSION = re.compile(
    r"In CSV column #(\d+): CSV conversion error to .*: invalid value '(.*)'"
)
_CSV_PARSE = re.compile(r"CSV parse error: .*?: (.*)$", re.DOTALL)
_JSON_ROW = re.compile(r"in row (\d+)")


def read_file(
    fs: pafs.FileSystem, fs_path: str, uri: str, size: int, layout: LandingLayout, schema: pa.Schema
) -> pa.Table:
    """One landing file as an Arrow table, its declared columns parsed as ``schema`` types.

    Raises:
        EmptyLandingFileError, NotParquetError, TruncatedParquetError, CorruptParquetError: A
            parquet file that is not one.
        LandingParseError: A CSV or JSON file that does not parse (the message names the line).
        ColumnTypeError: A CSV or JSON value that does not convert to its column's type.
    """
    if size == 0:
        raise EmptyLandingFileError(f"landing file {uri} is empty (0 bytes)")
    if layout.format == "parquet":
        return _read_parquet(fs, fs_path, uri, size)
    if layout.format == "csv":
        return _read_csv(fs, fs_path, uri, layout.csv, schema)
    return _read_json(fs, fs_path, uri, schema)


def _read_parquet(fs: pafs.FileSystem, fs_path: str, uri: str, size: int) -> pa.Table:
    with fs.open_input_file(fs_path) as file:
        head = file.read_at(len(PARQUET_MAGIC), 0)
        tail = file.read_at(len(PARQUET_MAGIC), max(size - len(PARQUET_MAGIC), 0))
    if head != PARQUET_MAGIC:
        raise NotParquetError(
            f"landing file {uri} is not parquet: it starts with {head!r}, not {PARQUET_MAGIC!r}"
        )
    if size < _MIN_PARQUET_BYTES or tail != PARQUET_MAGIC:
        raise TruncatedParquetError(
            f"landing file {uri} is truncated: {size} bytes, no parquet footer at the end"
        )
    try:
        return pq.read_table(fs_path, filesystem=fs)
    except (pa.ArrowException, OSError) as error:
        raise CorruptParquetError(
            f"landing file {uri} is not a readable parquet file: {error}"
        ) from error


def _open(fs: pafs.FileSystem, fs_path: str) -> pa.NativeFile:
    return fs.open_input_stream(fs_path, compression=compression_of(fs_path))


def _read_csv(
    fs: pafs.FileSystem, fs_path: str, uri: str, options: CsvOptions, schema: pa.Schema
) -> pa.Table:
    read_options = pacsv.ReadOptions(column_names=None if options.header else schema.names)
    parse_options = pacsv.ParseOptions(delimiter=options.delimiter)
    convert_options = pacsv.ConvertOptions(
        column_types={field.name: field.type for field in schema},
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    try:
        with _open(fs, fs_path) as stream:
            return pacsv.read_csv(
                stream,
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )
    except (pa.ArrowException, OSError) as error:
        message = str(error)
        line = _csv_error_line(fs, fs_path, options, message)
        where = f"landing file {uri}" + (f" line {line}" if line else "")
        if conversion := _CSV_CONVERSION.search(message):
            column = _csv_column_name(fs, fs_path, options, schema, int(conversion[1]))
            raise ColumnTypeError(
                f"{where}: column {column!r} holds {conversion[2]!r}, not a "
                f"{schema.field(column).type if column in schema.names else 'declared'} value"
            ) from error
        raise LandingParseError(f"{where} is not readable CSV: {message}") from error


def _lines(fs: pafs.FileSystem, fs_path: str) -> list[str]:
    """The file's text lines (only on the error path, to say where the error is)."""
    with _open(fs, fs_path) as stream:
        return bytes(stream.read()).decode("utf-8", "replace").splitlines()


def _csv_column_name(
    fs: pafs.FileSystem, fs_path: str, options: CsvOptions, schema: pa.Schema, index: int
) -> str:
    if not options.header:
        return schema.names[index] if index < len(schema) else f"#{index}"
    header = _lines(fs, fs_path)[0].split(options.delimiter)
    return header[index].strip().strip('"') if index < len(header) else f"#{index}"


def _csv_error_line(
    fs: pafs.FileSystem, fs_path: str, options: CsvOptions, message: str
) -> int | None:
    """The 1-based line of the first row a CSV error is about, when the message allows finding
    it (pyarrow names the bad value or the bad row's text, not its line)."""
    try:
        lines = _lines(fs, fs_path)
    except (pa.ArrowException, OSError):
        return None
    first = 1 if options.header else 0
    if conversion := _CSV_CONVERSION.search(message):
        column, value = int(conversion[1]), conversion[2]
        for number, text in enumerate(lines[first:], first + 1):
            fields = text.split(options.delimiter)
            if column < len(fields) and fields[column].strip().strip('"') == value:
                return number
    elif parse := _CSV_PARSE.search(message):
        row = parse[1].strip()
        for number, text in enumerate(lines, 1):
            if row and text.strip() == row:
                return number
    return None


def _read_json(fs: pafs.FileSystem, fs_path: str, uri: str, schema: pa.Schema) -> pa.Table:
    # JSON has no date type: date columns are read as their ISO text, then cast.
    dates = [field.name for field in schema if pa.types.is_date(field.type)]
    parsed = pa.schema(
        [field.with_type(pa.string()) if field.name in dates else field for field in schema]
    )
    parse_options = pajson.ParseOptions(explicit_schema=parsed, unexpected_field_behavior="infer")
    try:
        with _open(fs, fs_path) as stream:
            table = pajson.read_json(stream, parse_options=parse_options)
        for name in dates:
            index = table.schema.get_field_index(name)
            table = table.set_column(
                index, schema.field(name), table[name].cast(schema.field(name).type)
            )
        return table
    except (pa.ArrowException, OSError) as error:
        message = str(error)
        line = _json_error_line(fs, fs_path, message)
        where = f"landing file {uri}" + (f" line {line}" if line else "")
        if "changed from" in message or "conversion" in message.lower():
            raise ColumnTypeError(f"{where}: {message}") from error
        raise LandingParseError(f"{where} is not readable JSON: {message}") from error


def _json_error_line(fs: pafs.FileSystem, fs_path: str, message: str) -> int | None:
    """The 1-based line a JSON error is about: the first line that does not parse, else the
    row pyarrow names (its count restarts per block, so exact within the first block, ~1 MiB)."""
    try:
        lines = _lines(fs, fs_path)
    except (pa.ArrowException, OSError):
        lines = []
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            json.loads(text)
        except ValueError:
            return number
    row = _JSON_ROW.search(message)
    return int(row[1]) + 1 if row else None
