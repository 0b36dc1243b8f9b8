"""What one partition's load cost: time per phase, bytes read, written and removed, peak memory.

Times are wall-clock milliseconds measured around each phase of the step (landing read,
expectations, the upsert) or reported by delta-rs for the merge's own phases (scan, rewrite,
execution); the commit is the part of ``execute()`` beyond delta-rs's execution time. Bytes
written and removed come from the commit's add and remove actions (``delta.commit_files``),
never from listing files. Peak memory is the process's (see ``peak_rss_bytes``).
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dagster as dg

from upsert_pipeline import metadata_keys as keys
from upsert_pipeline.delta import UpsertResult
from upsert_pipeline.delta.commit_files import CommitFiles


@dataclass
class Stopwatch:
    """Milliseconds spent in each named phase of a step."""

    phases: dict[str, int] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Times the block as phase ``name`` (adding to an earlier block of that name)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = round((time.perf_counter() - started) * 1000)
            self.phases[name] = self.phases.get(name, 0) + elapsed


def peak_rss_bytes() -> int:
    """The process's peak resident set size so far (``getrusage(RUSAGE_SELF).ru_maxrss``).

    It is the whole process's high-water mark since it started, not this step's alone: in a
    ranged run every day shares one process, and the figure only grows. Linux reports kilobytes,
    macOS bytes.
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


LANDING_READ = "landing_read"
EXPECTATIONS = "expectations"
UPSERT = "upsert"
RECORDING = "recording"


def cost_metadata(
    watch: Stopwatch,
    result: UpsertResult,
    files: CommitFiles | None,
    *,
    landing_bytes: int | None,
) -> dict[str, dg.MetadataValue]:
    """The cost of one partition's load as plottable integers.

    ``files`` is the commit's (``None`` when the merge wrote no version: nothing written).
    """
    metadata: dict[str, dg.MetadataValue] = {
        keys.COST_LANDING_READ_MS: dg.MetadataValue.int(watch.phases.get(LANDING_READ, 0)),
        keys.COST_EXPECTATIONS_MS: dg.MetadataValue.int(watch.phases.get(EXPECTATIONS, 0)),
        keys.COST_UPSERT_MS: dg.MetadataValue.int(watch.phases.get(UPSERT, 0)),
        keys.COST_MERGE_SCAN_MS: dg.MetadataValue.int(result.scan_time_ms),
        keys.COST_MERGE_REWRITE_MS: dg.MetadataValue.int(result.rewrite_time_ms),
        keys.COST_MERGE_EXECUTION_MS: dg.MetadataValue.int(result.execution_time_ms),
        keys.COST_COMMIT_MS: dg.MetadataValue.int(
            max(result.execute_ms - result.execution_time_ms, 0)
        ),
        keys.COST_RECORDING_MS: dg.MetadataValue.int(watch.phases.get(RECORDING, 0)),
        keys.COST_PEAK_RSS_BYTES: dg.MetadataValue.int(peak_rss_bytes()),
        keys.COST_BYTES_WRITTEN: dg.MetadataValue.int(files.bytes_added if files else 0),
        keys.COST_COMMIT_FILES_ADDED: dg.MetadataValue.int(files.files_added if files else 0),
        keys.COST_COMMIT_FILES_REMOVED: dg.MetadataValue.int(files.files_removed if files else 0),
    }
    removed = files.bytes_removed if files else 0
    if removed is not None:
        metadata[keys.COST_BYTES_REMOVED] = dg.MetadataValue.int(removed)
    if landing_bytes is not None:
        metadata[keys.COST_LANDING_BYTES] = dg.MetadataValue.int(landing_bytes)
    return metadata
