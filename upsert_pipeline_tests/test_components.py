"""The feed component: each defs/<feed>/defs.yaml resolves to its Feed; bad YAML is named."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from pydantic import ValidationError

from upsert_pipeline.components.feed import FeedComponent
from upsert_pipeline.feeds import (
    CUSTOMERS,
    ORDERS,
    UnknownColumnTypeError,
    arrow_type,
    feed_names,
    feed_yaml,
    load_feed,
)

PROJECT_DIR = Path(__file__).resolve().parent.parent
DG = Path(sys.executable).with_name("dg")


def test_the_yaml_feeds_resolve_to_their_typed_specs():
    assert feed_names() == ("customers", "orders")
    assert load_feed("orders") == ORDERS
    assert ORDERS.keys == ("order_id",) and ORDERS.partition_column == "order_date"
    assert ORDERS.schema.field("amount").type == pa.decimal128(12, 2)
    assert ORDERS.schema.field("updated_at").type == pa.timestamp("us", tz="UTC")
    assert not ORDERS.schema.field("order_id").nullable
    assert CUSTOMERS.partition_column is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("int64", pa.int64()),
        ("date32", pa.date32()),
        ("date32[day]", pa.date32()),
        ("double", pa.float64()),
        ("decimal128(38, 9)", pa.decimal128(38, 9)),
        ("timestamp[ms]", pa.timestamp("ms")),
        ("timestamp[us, tz=Europe/Paris]", pa.timestamp("us", tz="Europe/Paris")),
    ],
)
def test_column_types_are_spelled_as_arrow_prints_them(name, expected):
    assert arrow_type(name) == expected
    assert arrow_type(str(expected)) == expected


def test_an_unknown_column_type_is_refused_naming_the_choices():
    with pytest.raises(UnknownColumnTypeError, match=r"'varchar'.*int64"):
        arrow_type("varchar")


def _attributes(**changes):
    component = FeedComponent.from_yaml_file(feed_yaml("orders"))
    return {**component.model_dump(), **changes}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"keys": ["refund_id"]}, "refund_id"),
        ({"partition_column": "refund_date"}, "refund_date"),
        ({"name": "../orders"}, "name"),
        ({"columns": [{"name": "order_id", "type": "varchar"}]}, "varchar"),
        ({"partition_colum": "order_date"}, "partition_colum"),
    ],
)
def test_a_bad_feed_is_refused_naming_what_is_wrong(changes, message):
    with pytest.raises(ValidationError, match=message):
        FeedComponent.model_validate(_attributes(**changes))


def test_dg_check_yaml_names_a_typoed_field_and_its_line(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(PROJECT_DIR / "pyproject.toml", project)
    shutil.copytree(
        PROJECT_DIR / "upsert_pipeline",
        project / "upsert_pipeline",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    path = project / "upsert_pipeline" / "defs" / "orders" / "defs.yaml"
    lines = path.read_text().splitlines(keepends=True)
    [line] = [n for n, text in enumerate(lines, 1) if text.startswith("  partition_column:")]
    lines[line - 1] = lines[line - 1].replace("partition_column:", "partition_colum:")
    path.write_text("".join(lines))
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}},
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": str(project),
    }

    result = subprocess.run(
        [str(DG), "check", "yaml", "upsert_pipeline/defs/orders"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"{line:4d} |   partition_colum: order_date" in output
    assert "'partition_colum' was unexpected" in output
    # The untouched feed still validates.
    clean = subprocess.run(
        [str(DG), "check", "yaml", "upsert_pipeline/defs/customers"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "validated successfully" in clean.stdout
