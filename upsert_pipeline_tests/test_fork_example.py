"""The README's "Fork this template" section, run exactly as written, so it cannot rot.

The section shows the orders feed's ``defs.yaml`` (asserted equal to the file) and the shell
commands that fork it. The test runs those commands in a temporary copy of the project, then loads
that copy's code location in a fresh interpreter and materializes the new ``refunds`` asset.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent
README = PROJECT_DIR / "README.md"
HEADING = "## Fork this template"
DAY = "2026-11-02"

PROBE = """
import json, shutil, sys
from pathlib import Path

import dagster as dg

from upsert_pipeline.definitions import defs, feed_definitions
feeds = feed_definitions()
from upsert_pipeline.resources import DeltaMergeResource, LandingResource
from upsert_pipeline.sample_data import generate

root, day = Path(sys.argv[1]), sys.argv[2]
landing = root / "landing"
generate(landing, days=3)
(landing / "refunds").mkdir()
shutil.copy(landing / "orders" / f"{day}.parquet", landing / "refunds" / f"{day}.parquet")
resources = {
    "landing": LandingResource(uri=str(landing)),
    "lake": DeltaMergeResource(lake_uri=str(root / "lake")),
}
graph = defs.resolve_asset_graph()

def describe(name):
    key = dg.AssetKey(name)
    [asset] = [a for a in feeds.assets if a.key == key]
    checks = [c for c in feeds.asset_checks if {k.asset_key for k in c.check_keys} == {key}]
    with dg.instance_for_test() as instance:
        result = dg.materialize([asset, *checks], partition_key=day, resources=resources,
                                instance=instance)
    [materialization] = result.asset_materializations_for_node(name)
    return {
        "module": sys.modules["upsert_pipeline"].__file__,
        "partitions": type(asset.partitions_def).__name__ if asset.partitions_def else None,
        "checks": sorted(k.name for k in graph.asset_check_keys if k.asset_key == key),
        "verdicts": {e.check_name: e.passed for e in result.get_asset_check_evaluations()},
        "metadata": {k: v.value for k, v in materialization.metadata.items()
                     if isinstance(v, dg.IntMetadataValue)},
        "jobs": sorted(j.name for j in defs.resolve_all_job_defs() if name in j.name),
    }

print(json.dumps({name: describe(name) for name in ("orders", "refunds")}))
"""


def _section(readme: str) -> str:
    _, found, rest = readme.partition(f"\n{HEADING}\n")
    assert found, f"README.md has no {HEADING!r} section"
    return rest.split("\n## ", 1)[0]


def _blocks(section: str, language: str) -> list[str]:
    pattern = rf"^```{language}\n(.*?)^```$"
    return [str(b) for b in re.findall(pattern, section, flags=re.MULTILINE | re.DOTALL)]


def test_the_yaml_the_readme_shows_is_the_orders_feed():
    [shown] = _blocks(_section(README.read_text()), "yaml")
    assert shown == (PROJECT_DIR / "upsert_pipeline" / "defs" / "orders" / "defs.yaml").read_text()


@pytest.fixture(scope="module")
def forked(tmp_path_factory) -> dict[str, dict]:
    """Runs the README's shell block in a copy of the project, then the probe on that copy."""
    root = tmp_path_factory.mktemp("fork")
    project = root / "project"
    project.mkdir()
    shutil.copy(PROJECT_DIR / "pyproject.toml", project)
    shutil.copytree(
        PROJECT_DIR / "upsert_pipeline",
        project / "upsert_pipeline",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    [commands] = _blocks(_section(README.read_text()), "bash")
    subprocess.run(["bash", "-euo", "pipefail", "-c", commands], cwd=project, check=True)
    env = {**os.environ, "PYTHONPATH": str(project)}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(root), DAY],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    described = json.loads(result.stdout.strip().splitlines()[-1])
    # The copy was loaded, not the project itself.
    assert described["refunds"]["module"] == str(project / "upsert_pipeline" / "__init__.py")
    return described


def test_the_fork_is_a_partitioned_asset_with_the_same_checks_and_counts(forked):
    orders, refunds = forked["orders"], forked["refunds"]
    assert refunds["partitions"] is not None
    assert refunds["partitions"] == orders["partitions"]
    assert (
        refunds["checks"]
        == orders["checks"]
        == [
            "counts_reconcile",
            "expect_known_status",  # the orders YAML's expectations, forked with it
            "expect_non_negative_amount",
            "no_out_of_band_writes",
            "not_empty",
            "volume_within_history",
        ]
    )
    assert refunds["verdicts"] == dict.fromkeys(refunds["checks"], True)
    assert set(refunds["metadata"]) == set(orders["metadata"])
    # The same batch, merged into an empty table: the same counts.
    assert refunds["metadata"]["upsert/rows_inserted"] == orders["metadata"]["upsert/rows_inserted"]
    assert (
        refunds["metadata"]["dagster/partition_row_count"]
        == (refunds["metadata"]["upsert/source_rows"])
    )
    assert refunds["jobs"] == ["ingest_refunds"]
