"""``python -m upsert_pipeline.check_defs`` names each mistake's file, line and fix, fast."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from upsert_pipeline.check_defs import check_folder

DEFS = Path(__file__).resolve().parent.parent / "upsert_pipeline" / "defs"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "keys: [order_id]",
            "keys: order_id",
            "keys: Input should be a valid list — write keys: [order_id]",
        ),
        (
            "{name: order_id, type: int64",
            "{name: order_id, type: boolean",
            "did you mean type: bool?",
        ),
        (
            "partition_column: order_date",
            "partition_colum: order_date",
            "unknown attribute 'partition_colum' — did you mean partition_column:?",
        ),
        ("keys: [order_id]", "keys: [order_idd]", "keys ['order_idd'] are not among the columns"),
        ("partition_column: order_date", "partition_column: status", "declare it type: date32"),
        ('deadline_cron: "0 9 * * *"', 'deadline_cron: "0 25 * * *"', "hour 25 is out of 0-23"),
        (
            'path: "orders/{date}.parquet"',
            'path: "orders/*.parquet"',
            "does not tell daily partitions apart",
        ),
        ("cadence: daily", "cadence: dayly", "write 'hourly', 'daily', 'weekly' or 'monthly'"),
        (
            "type: upsert_pipeline.components.FeedComponent",
            "type: upsert_pipeline.components.FeedComponnt",
            "did you mean type: upsert_pipeline.components.FeedComponent?",
        ),
    ],
)
def test_each_mistake_is_named_with_its_file_and_line(tmp_path, old, new, expected):
    shutil.copytree(DEFS, tmp_path / "defs", ignore=shutil.ignore_patterns("__pycache__"))
    path = tmp_path / "defs" / "orders" / "defs.yaml"
    text = path.read_text()
    assert text.count(old) == 1
    path.write_text(text.replace(old, new))
    line = next(n for n, t in enumerate(path.read_text().splitlines(), 1) if new in t)
    [problem] = check_folder(tmp_path / "defs")
    assert problem.startswith(f"{path}:{line}: "), problem
    assert expected in problem, problem


def test_the_checker_is_fast_and_passes_the_shipped_feeds():
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "upsert_pipeline.check_defs"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout
    assert time.monotonic() - started < 5


def test_a_broken_feed_fails_the_code_location_with_file_line_and_mistake_first(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(
        DEFS.parent, project / "upsert_pipeline", ignore=shutil.ignore_patterns("__pycache__")
    )
    path = project / "upsert_pipeline" / "defs" / "orders" / "defs.yaml"
    path.write_text(path.read_text().replace("keys: [order_id]", "keys: order_id"))
    line = next(n for n, t in enumerate(path.read_text().splitlines(), 1) if "keys: order_id" in t)
    result = subprocess.run(
        [sys.executable, "-c", "import upsert_pipeline.definitions"],
        cwd=project,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(project)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"upsert_pipeline.check_defs.FeedDefinitionError: {path}:{line}: keys:")


BROKEN = """\
type: upsert_pipeline.components.FeedComponent
attributes:
  name: shipments
  description: Shipments landing as gzipped CSV, several files a day.
  columns:
    - {name: shipment_id, type: int64, nullable: false}
    - {name: ship_date, type: date32, nullable: false}
    - {name: delivered, type: boolean}
  keys: shipment_id
  partition_column: ship_dat
  partitions: {start: "2019-01-01", cadence: daily}
  landing:
    path: "shipments/*.csv.gz"
    format: csv
  freshnes:
    deadline_cron: "0 9 * * *"
    lower_bound_hours: 24
"""


def test_one_run_names_every_mistake_in_line_order(tmp_path):
    (tmp_path / "shipments").mkdir()
    (tmp_path / "shipments" / "defs.yaml").write_text(BROKEN)
    problems = check_folder(tmp_path)
    lines = [int(problem.split(":")[1]) for problem in problems]
    assert lines == [8, 9, 10, 13, 15], problems
    assert "did you mean type: bool?" in problems[0]
    assert "write keys: [shipment_id]" in problems[1]
    assert "partition_column 'ship_dat' is not among the columns" in problems[2]
    assert "put {date}" in problems[3]
    assert "did you mean freshness:?" in problems[4]
