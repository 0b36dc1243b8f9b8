"""Asset checks that judge every materialization from its commit counts, never from a scan.

``judges`` holds the pure judging functions (no Dagster import), ``wiring`` their Dagster side,
``evaluations`` the verdicts as per-partition check evaluations, ``maintenance`` the judge of
``maintain_lake``, ``names`` the check names. This package's namespace holds only the Dagster-free
names, so importing a judge does not import Dagster.
"""

from upsert_pipeline.checks.judges import VOLUME_BAND, Severity, Verdict, VolumeBand
from upsert_pipeline.checks.names import (
    COUNTS_RECONCILE,
    NO_OUT_OF_BAND_WRITES,
    NOT_EMPTY,
    VOLUME_WITHIN_HISTORY,
)

__all__ = [
    "COUNTS_RECONCILE",
    "NOT_EMPTY",
    "NO_OUT_OF_BAND_WRITES",
    "VOLUME_BAND",
    "VOLUME_WITHIN_HISTORY",
    "Severity",
    "Verdict",
    "VolumeBand",
]
