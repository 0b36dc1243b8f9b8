"""Checks a batch must pass before anything is written: schema, keys and partition values.

All of them look at the batch in memory; none reads the table's data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import Schema as DeltaSchema

from upsert_pipeline.delta.errors import (
    ColumnTypeError,
    DuplicateColumnError,
    DuplicateKeyError,
    InvalidPartitionValueError,
    MissingColumnError,
    NullKeyError,
    NullValueError,
    PartitionMismatchError,
    UnexpectedColumnError,
)
from upsert_pipeline.delta.predicates import check_identifier
from upsert_pipeline.delta.result import PartitionValue

_SAMPLE = 5


def storage_type(data_type: pa.DataType) -> pa.DataType:
    """Folds the string and binary layouts (large, view) that Arrow producers pick freely."""
    if pa.types.is_large_string(data_type) or pa.types.is_string_view(data_type):
        return pa.string()
    if pa.types.is_large_binary(data_type) or pa.types.is_binary_view(data_type):
        return pa.binary()
    return data_type


def storage_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the layouts a Delta table stores (``string``, not ``large_string``)."""
    return pa.schema([field.with_type(storage_type(field.type)) for field in schema])


def conform(batch: pa.Table, schema: pa.Schema) -> pa.Table:
    """Returns ``batch`` with exactly ``schema``'s columns, in its order and types.

    Only layout differences (``large_string`` or ``string_view`` for ``string``) are cast away;
    any other type difference is refused.

    Raises:
        MissingColumnError: A column of ``schema`` is absent.
        UnexpectedColumnError: The batch has a column that ``schema`` lacks.
        ColumnTypeError: A column's type differs from ``schema``'s.
        NullValueError: A column that ``schema`` declares not null holds a null.
        InvalidIdentifierError: A column name is not a plain identifier.
    """
    for name in batch.column_names:
        check_identifier(name)
    missing = [name for name in schema.names if name not in batch.column_names]
    if missing:
        raise MissingColumnError(f"batch lacks column(s) {missing}; expected {schema.names}")
    extra = [name for name in batch.column_names if name not in schema.names]
    if extra:
        raise UnexpectedColumnError(f"batch has column(s) {extra} that the table lacks")
    wrong = [
        f"{field.name}: {batch.schema.field(field.name).type} (expected {field.type})"
        for field in schema
        if storage_type(batch.schema.field(field.name).type) != storage_type(field.type)
    ]
    if wrong:
        raise ColumnTypeError("batch column(s) of the wrong type: " + "; ".join(wrong))
    _check_not_null(batch, schema)
    return batch.select(schema.names).cast(schema)


def _check_not_null(batch: pa.Table, fields: Iterable[pa.Field]) -> None:
    """Refuses nulls in the columns of ``fields`` that are declared not null.

    Raises:
        NullValueError: Such a column holds a null; the message counts them per column.
    """
    nulls = [
        f"{field.name} ({batch.column(field.name).null_count})"
        for field in fields
        if not field.nullable and batch.column(field.name).null_count
    ]
    if nulls:
        raise NullValueError("null(s) in column(s) declared not null: " + ", ".join(nulls))


def _all_unique(keys: pa.Table) -> bool:
    """Whether no two rows of ``keys`` (the key columns) are equal."""
    frame = pl.from_arrow(keys)
    assert isinstance(frame, pl.DataFrame)
    if frame.width == 1:
        return frame.to_series().n_unique() == frame.height
    return not frame.is_duplicated().any()


def check_keys(batch: pa.Table, keys: Sequence[str]) -> None:
    """Refuses null keys and keys that occur more than once in the batch.

    The exact uniqueness test is one multithreaded polars pass over the key columns alone (a
    single key's ``n_unique`` has fast paths, e.g. for sorted integers); the Arrow group-by that
    names a sample of the repeated keys runs only once a repeat is known.

    Raises:
        NullKeyError: A key column holds a null.
        DuplicateKeyError: Several rows share a key; a sample of them is named.
    """
    if not keys:
        raise ValueError("an upsert needs at least one key column")
    for key in keys:
        if key not in batch.column_names:
            raise MissingColumnError(f"batch lacks key column {key!r}")
        nulls = batch.column(key).null_count
        if nulls:
            raise NullKeyError(f"key column {key!r} holds {nulls} null(s)")
    if _all_unique(batch.select(list(keys))):
        return
    counts = batch.group_by(list(keys)).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts.column("count_all"), 1))
    sample = repeated.slice(0, _SAMPLE).to_pylist()
    raise DuplicateKeyError(
        f"{repeated.num_rows} key(s) occur more than once in the batch, e.g. {sample}"
    )


def check_partition_values(partition: Mapping[str, PartitionValue]) -> None:
    """Refuses partition values that cannot be stored faithfully or written as a literal.

    Raises:
        InvalidIdentifierError: A partition column name is not a plain identifier.
        InvalidPartitionValueError: A value is an empty string (Delta stores it as null, so the
            rows would land outside the partition asked for), a bool, or not a str, int, date
            or datetime at all.
    """
    for name, value in partition.items():
        check_identifier(name)
        if isinstance(value, bool):
            raise InvalidPartitionValueError(
                f"partition value {name}={value!r}: a bool is not a partition value"
            )
        if not isinstance(value, str | int | dt.date):
            raise InvalidPartitionValueError(
                f"partition value {name}={value!r} is a {type(value).__name__}, "
                "not a str, int or date"
            )
        if value == "":
            raise InvalidPartitionValueError(
                f"partition value {name}='' would be stored as null by Delta Lake"
            )


def _check_value_fits(name: str, value: PartitionValue, column_type: pa.DataType) -> None:
    """A timestamp column's partition is a datetime (timezone-aware exactly when the column is),
    any other column's is not: a date would match midnight, a datetime would be cut to its day."""
    if pa.types.is_timestamp(column_type):
        aware = isinstance(value, dt.datetime) and value.tzinfo is not None
        if not isinstance(value, dt.datetime) or aware != (column_type.tz is not None):
            wanted = "a timezone-aware (UTC)" if column_type.tz is not None else "a naive"
            raise InvalidPartitionValueError(
                f"partition value {name}={value!r} does not fit the batch's {column_type} "
                f"column: give {wanted} datetime"
            )
    elif isinstance(value, dt.datetime):
        raise InvalidPartitionValueError(
            f"partition value {name}={value!r} is a datetime but the batch's column is "
            f"{column_type}; a datetime partitions a timestamp column"
        )


def check_partition(batch: pa.Table, partition: Mapping[str, PartitionValue]) -> None:
    """Refuses rows whose partition columns are not the partition being loaded.

    Raises:
        MissingColumnError: A partition column is absent from the batch.
        InvalidPartitionValueError: A datetime for a column that is not a timestamp, or a value
            that is not a datetime (or not aware exactly when the column is) for a timestamp one.
        PartitionMismatchError: Some row holds another value (or null) in a partition column.
    """
    for name, value in partition.items():
        if name not in batch.column_names:
            raise MissingColumnError(f"batch lacks partition column {name!r}")
        values = batch.column(name)
        _check_value_fits(name, value, values.type)
        try:
            expected = pa.scalar(value).cast(values.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise PartitionMismatchError(
                f"partition value {name}={value!r} does not fit the batch's {values.type} column"
            ) from error
        outside = pc.invert(pc.fill_null(pc.equal(values, expected), False))
        stray = pc.filter(values, outside)
        if len(stray):
            found = sorted({str(v) for v in stray.unique().to_pylist()})[:_SAMPLE]
            raise PartitionMismatchError(
                f"{len(stray)} row(s) have {name} outside the partition {expected}: {found}"
            )


def check_typed(batch: pa.Table, *, ignore: Sequence[str] = ()) -> None:
    """Refuses columns with no type (all nulls, Arrow ``null``): Delta cannot store them.

    Raises:
        ColumnTypeError: Some column other than ``ignore`` is of Arrow type ``null``.
    """
    untyped = [
        field.name
        for field in batch.schema
        if pa.types.is_null(field.type) and field.name not in ignore
    ]
    if untyped:
        raise ColumnTypeError(f"column(s) {untyped} hold only nulls and have no type")


def _delta_types(schema: pa.Schema) -> list[pa.DataType | None]:
    """The Arrow type delta-rs gives each field of a table created from ``schema`` (``None``: no
    Delta Lake type at all)."""
    try:
        stored = pa.schema(DeltaSchema.from_arrow(schema).to_arrow())
    except Exception:  # some field has no Delta Lake type (delta-rs raises a bare Exception)
        if len(schema) == 1:
            return [None]
        return [data_type for field in schema for data_type in _delta_types(pa.schema([field]))]
    return [field.type for field in stored]


def check_storable(batch: pa.Table, *, ignore: Sequence[str] = ()) -> None:
    """Refuses what a Delta table created from ``batch`` would store otherwise than it is sent.

    Delta Lake has no unsigned integers and no half floats, and keeps a second or millisecond
    timestamp in microseconds: delta-rs would create the table with another type (``uint32``
    becomes ``int32``) and the batch would then not fit the table it had just created. Checked
    before anything is written, so a refused first batch leaves no table behind.

    Raises:
        ColumnTypeError: A column's type is not stored by Delta Lake as it is.
        NullValueError: A column the batch declares not null holds a null.
    """
    fields = [field for field in batch.schema if field.name not in ignore]
    wanted = storage_schema(pa.schema(fields))
    wrong = [
        f"{field.name}: {field.type} "
        + (f"(Delta Lake stores {stored})" if stored is not None else "(no Delta Lake type)")
        for field, want, stored in zip(fields, wanted, _delta_types(wanted), strict=True)
        if stored is None or stored != want.type
    ]
    if wrong:
        raise ColumnTypeError(
            "batch column(s) that Delta Lake would not store as sent: " + "; ".join(wrong)
        )
    _check_not_null(batch, fields)


def check_distinct_names(names: Sequence[str], *, existing: Sequence[str] = ()) -> None:
    """Refuses column names that differ only in case, among ``names`` or from ``existing`` (the
    table's columns, which a new name would be added beside): Delta Lake column names are
    case-insensitive.

    Raises:
        DuplicateColumnError: Names the colliding columns.

    Example:
        >>> check_distinct_names(["status", "Status"])
        Traceback (most recent call last):
        DuplicateColumnError: columns ['Status', 'status'] differ only in case; ...
    """
    by_folded: dict[str, set[str]] = {}
    for name in [*existing, *names]:
        by_folded.setdefault(name.casefold(), set()).add(name)
    clashes = sorted(name for group in by_folded.values() if len(group) > 1 for name in group)
    if clashes:
        raise DuplicateColumnError(
            f"columns {clashes} differ only in case; Delta Lake column names are "
            "case-insensitive, so they would be one column: rename one"
        )


def conform_evolving(
    batch: pa.Table,
    schema: pa.Schema,
    *,
    evolve: bool,
    control: Sequence[str] = (),
    required: Collection[str] | None = None,
) -> tuple[pa.Table, tuple[str, ...], tuple[str, ...]]:
    """Conforms ``batch`` to the table's ``schema``, keeping columns new to the table if ``evolve``.

    The ``required`` columns of ``schema`` (all of them when ``None``) must be present with
    their types (see ``conform``); a nullable column outside ``required`` that the batch lacks
    (one the table gained by schema evolution after the batch's day) is filled with nulls. New
    columns follow the table's, nullable, in the batch's order; ``control`` columns (such as
    ``_op``) follow last, as they are.

    Returns:
        The conformed batch, the names of the columns new to the table, and the names of the
        columns filled with nulls.

    Raises:
        InvalidIdentifierError: A column name is not a plain identifier.
        UnexpectedColumnError: A new column without ``evolve``.
        MissingColumnError: A required column (or a not-null one) is absent.
        ColumnTypeError, NullValueError: As ``conform``.
    """
    for name in batch.column_names:
        check_identifier(name)
    data_names = [name for name in batch.column_names if name not in control]
    added = tuple(name for name in data_names if name not in schema.names)
    if added:
        check_distinct_names(added, existing=schema.names)
    if added and not evolve:
        raise UnexpectedColumnError(f"batch has column(s) {list(added)} that the table lacks")
    filled = tuple(
        field.name
        for field in schema
        if field.name not in batch.column_names
        and field.nullable
        and required is not None
        and field.name not in required
    )
    present = batch.select([n for n in data_names if n not in added])
    for name in filled:
        present = present.append_column(
            schema.field(name), pa.nulls(batch.num_rows, schema.field(name).type)
        )
    conformed = conform(present, schema)
    for name in (*added, *(n for n in control if n in batch.column_names)):
        values = batch.column(name)
        data_type = storage_type(values.type)
        conformed = conformed.append_column(pa.field(name, data_type), values.cast(data_type))
    return conformed, added, filled
