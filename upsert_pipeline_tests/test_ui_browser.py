"""The counts in the Dagster UI, checked the way people see them: a real webserver and Chromium.

The module materializes several ``orders`` partitions in-process on a temporary SQLite instance
(first loads, re-deliveries that update rows, a re-run that changes nothing), serves that instance
with ``dagster-webserver`` on a free loopback port, and drives Debian's Chromium headless through
Playwright to the asset's pages. Every number asserted on a page is the one the instance recorded.

``UPSERT_PIPELINE_SCREENSHOTS=docs`` (``make screenshots``) writes the README's screenshots there;
otherwise they go to a temporary folder (useful when a test fails).
"""

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from upsert_pipeline.checks import (
    COUNTS_RECONCILE,
    NO_OUT_OF_BAND_WRITES,
    NOT_EMPTY,
    VOLUME_WITHIN_HISTORY,
)
from upsert_pipeline.checks.wiring import build_standalone_checks
from upsert_pipeline.feeds import ORDERS
from upsert_pipeline.partitions import daily_partitions
from upsert_pipeline.resources import (
    LAKE_URI_ENV,
    LANDING_URI_ENV,
    DeltaMergeResource,
    LandingResource,
)
from upsert_pipeline.sample_data import generate, redeliver
from upsert_pipeline_tests.conftest import feed_asset
from upsert_pipeline_tests.webserver import (
    PROJECT_DIR,
    running_webserver,
    write_instance_config,
    write_workspace,
)

CHROMIUM = "/usr/bin/chromium"
"""Debian's Chromium (``.ci/run`` installs it); Playwright's own browser download is not used."""
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000
VIEWPORT = {"width": 1400, "height": 1000}
PARTITION_VIEWPORT = {"width": 1400, "height": 1360}
"""Tall enough to show a partition's whole metadata table without scrolling."""
PLOTS_VIEWPORT = {"width": 1800, "height": 1000}
"""Wide enough for the plots' partition axis to be readable."""
SCREENSHOTS_ENV = "UPSERT_PIPELINE_SCREENSHOTS"

ASSET = dg.AssetKey(ORDERS.name)
DAYS = 6
PARTITIONS = daily_partitions.get_partition_keys()[:DAYS]
REDELIVERED = (2, 5)
"""Day offsets whose batches are re-delivered (corrected) and materialized again."""
REDELIVERED_PARTITION = PARTITIONS[REDELIVERED[0]]
RERUN_PARTITION = PARTITIONS[0]
"""Materialized a second time with the same batch: nothing changes."""
FIRST_LOAD_PARTITION = PARTITIONS[1]
"""Materialized once."""

PARTITION_COUNT_KEYS = (
    "upsert/rows_inserted",
    "upsert/rows_updated",
    "upsert/rows_unchanged",
    "upsert/rows_deleted",
    "dagster/partition_row_count",
)
PLOTTED_COUNT_KEYS = (*PARTITION_COUNT_KEYS, "dagster/row_count")
SCREENSHOT_PLOTS = (
    "upsert/rows_deleted",
    "upsert/rows_inserted",
    "upsert/rows_unchanged",
    "upsert/rows_updated",
)
"""The plots in the README's screenshot (Dagster sorts plots by key: these are two rows)."""
CHECKS = (COUNTS_RECONCILE, NO_OUT_OF_BAND_WRITES, NOT_EMPTY, VOLUME_WITHIN_HISTORY)

orders = feed_asset("orders")


@dataclass(frozen=True)
class ServedLake:
    """The webserver's base URL, the instance it serves and where screenshots go."""

    base_url: str
    instance: dg.DagsterInstance
    screenshots: Path

    def url(self, query: str) -> str:
        """The ``orders`` asset page with the given query string."""
        return f"{self.base_url}/assets/{ORDERS.name}?{query}"


def _materialize_history(instance: dg.DagsterInstance, landing: Path, lake: Path) -> None:
    """First loads of every day, re-deliveries of some days, and one re-run of the same batch."""
    assets = [orders, *build_standalone_checks(ORDERS)]
    resources = {
        "landing": LandingResource(uri=str(landing)),
        "lake": DeltaMergeResource(lake_uri=str(lake)),
    }

    def materialize(partition: str) -> None:
        result = dg.materialize(
            assets, partition_key=partition, resources=resources, instance=instance
        )
        assert result.success, partition

    for partition in PARTITIONS:
        materialize(partition)
    redeliver(landing, days=REDELIVERED)
    for offset in REDELIVERED:
        materialize(PARTITIONS[offset])
    materialize(RERUN_PARTITION)


def _screenshots_dir(tmp_root: Path) -> Path:
    configured = os.environ.get(SCREENSHOTS_ENV)
    folder = (PROJECT_DIR / configured) if configured else tmp_root / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def served_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedLake]:
    root = tmp_path_factory.mktemp("ui")
    home = root / "dagster_home"
    write_instance_config(home)
    landing, lake = root / "landing", root / "lake"
    generate(landing, days=DAYS)
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        # Everything is recorded before the webserver starts: one writer at a time on SQLite.
        _materialize_history(instance, landing, lake)
        with running_webserver(
            dagster_home=home,
            workspace=write_workspace(root / "workspace.yaml"),
            env={LAKE_URI_ENV: str(lake), LANDING_URI_ENV: str(landing)},
            log_path=root / "webserver.log",
        ) as base_url:
            # The dev instance's `nux: enabled: false` keeps the community sign-up dialog away:
            # nothing is dismissed here, so a dialog over the page would fail the tests.
            yield ServedLake(base_url, instance, _screenshots_dir(root))
    finally:
        instance.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def _materializations(instance: dg.DagsterInstance, partition: str) -> list[dg.EventLogRecord]:
    """The partition's materializations, newest first."""
    records_filter = dg.AssetRecordsFilter(asset_key=ASSET, asset_partitions=[partition])
    return list(instance.fetch_materializations(records_filter, limit=100).records)


def _recorded_counts(record: dg.EventLogRecord) -> dict[str, int]:
    """The integer metadata of a recorded materialization."""
    materialization = record.asset_materialization
    assert materialization is not None
    return {
        key: value.value
        for key, value in materialization.metadata.items()
        if isinstance(value, dg.IntMetadataValue) and value.value is not None
    }


def _metadata_value(page: Page, key: str) -> Locator:
    """The value cell of the metadata table row whose key is ``key`` (innermost table rows)."""
    row = page.locator("tr:not(:has(tr))").filter(has=page.get_by_text(key, exact=True))
    return row.locator("td").nth(1)


def _button(page: Page, text: str) -> Locator:
    """The button labelled exactly ``text`` (its accessible name also holds its icon's name)."""
    return page.locator("button").filter(has_text=re.compile(f"^{re.escape(text)}$"))


def _plot(page: Page, key: str) -> Locator:
    """The card of the plot titled ``key``: its heading and its canvas."""
    title = page.get_by_text(key, exact=True)
    return title.locator("xpath=ancestor::div[.//canvas][1]")


@pytest.mark.parametrize(
    ("partition", "materializations"),
    [(REDELIVERED_PARTITION, 2), (RERUN_PARTITION, 2), (FIRST_LOAD_PARTITION, 1)],
    ids=["redelivered", "rerun-unchanged", "first-load"],
)
def test_a_partition_shows_its_recorded_counts(
    served_lake: ServedLake, page: Page, partition: str, materializations: int
) -> None:
    records = _materializations(served_lake.instance, partition)
    assert len(records) == materializations
    latest, first = _recorded_counts(records[0]), _recorded_counts(records[-1])
    rows = latest["dagster/partition_row_count"]
    if partition == REDELIVERED_PARTITION:
        assert latest["upsert/rows_inserted"] > 0 and latest["upsert/rows_updated"] > 0
        assert latest["upsert/rows_deleted"] > 0  # the re-delivery carries tombstones
        assert rows == (
            first["dagster/partition_row_count"]
            + latest["upsert/rows_inserted"]
            - latest["upsert/rows_deleted"]
        )
        assert latest["upsert/rows_unchanged"] == (
            latest["upsert/source_rows"]
            - latest["upsert/rows_inserted"]
            - latest["upsert/rows_updated"]
            - latest["upsert/rows_deleted"]
        )
    elif partition == RERUN_PARTITION:
        assert latest["upsert/rows_inserted"] == latest["upsert/rows_updated"] == 0
        assert latest["upsert/rows_unchanged"] == rows == first["upsert/rows_inserted"]
        assert latest["delta/version"] == latest["delta/read_version"]
    else:
        assert latest["upsert/rows_inserted"] == rows > 0
        assert latest["upsert/rows_updated"] == latest["upsert/rows_unchanged"] == 0

    page.set_viewport_size(PARTITION_VIEWPORT)
    page.goto(served_lake.url(f"view=partitions&partition={partition}"))

    # The detail pane is this partition's: its history has exactly its materializations.
    history = page.get_by_role("button", name=f"View all historical events ({materializations})")
    expect(history).to_be_visible()
    for key in PARTITION_COUNT_KEYS:
        expect(_metadata_value(page, key), key).to_have_text(str(latest[key]))
    if partition == REDELIVERED_PARTITION:
        page.screenshot(path=served_lake.screenshots / "ui-partition-counts.png")


def test_the_plots_draw_each_count_across_partitions(served_lake: ServedLake, page: Page) -> None:
    page.set_viewport_size(PLOTS_VIEWPORT)
    page.goto(served_lake.url("view=overview"))
    _button(page, "Plots").click()

    expect(_button(page, "Plots")).to_have_attribute("aria-selected", "true")
    expect(_button(page, "Partitions")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_text("When graphing values by partition")).to_be_visible()
    for key in PLOTTED_COUNT_KEYS:
        expect(_plot(page, key).locator("canvas"), key).to_be_visible()

    cards = [_plot(page, key) for key in SCREENSHOT_PLOTS]
    # The cards span several rows of the plot grid: make the whole of them fit the viewport.
    viewport = page.viewport_size or {"width": 1400, "height": 1000}
    page.set_viewport_size({"width": viewport["width"], "height": 2400})
    cards[0].scroll_into_view_if_needed()
    page.mouse.move(0, 0)  # no hovered point in the picture
    boxes = [card.bounding_box() for card in cards]
    assert all(box is not None for box in boxes)
    left = min(box["x"] for box in boxes if box)
    top = min(box["y"] for box in boxes if box)
    right = max(box["x"] + box["width"] for box in boxes if box)
    bottom = max(box["y"] + box["height"] for box in boxes if box)
    page.screenshot(
        path=served_lake.screenshots / "ui-count-plots.png",
        clip={"x": left, "y": top, "width": right - left, "height": bottom - top},
    )


def test_the_checks_tab_shows_each_checks_latest_result(
    served_lake: ServedLake, page: Page
) -> None:
    storage = served_lake.instance.event_log_storage
    latest = storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(ASSET, name) for name in CHECKS]
    )
    evaluations = {
        key.name: record.event.asset_check_evaluation
        for key, record in latest.items()
        if record.event is not None
    }
    assert set(evaluations) == set(CHECKS)
    assert all(evaluation and evaluation.passed for evaluation in evaluations.values())

    page.goto(served_lake.url("view=checks"))

    for name in CHECKS:
        listed = page.get_by_title(name, exact=True).locator("xpath=..")
        expect(listed, name).to_contain_text("Succeeded")
    reconcile = evaluations[COUNTS_RECONCILE]
    assert reconcile is not None
    page.get_by_title(COUNTS_RECONCILE, exact=True).click()
    expect(page.get_by_text("Passed", exact=True)).to_be_visible()
    expect(page.get_by_text(str(reconcile.partition), exact=True).first).to_be_visible()
    # The latest evaluation is of the re-run that wrote no version: it compares the landing and
    # source rows and the merge's counts (the before/after identity needs a commit).
    for key in ("landing_rows", "source_rows", "inserted", "deleted"):
        expected = reconcile.metadata[key].value
        expect(_metadata_value(page, key), key).to_have_text(str(expected))
    page.screenshot(path=served_lake.screenshots / "ui-checks.png")
