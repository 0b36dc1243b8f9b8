"""``ObservedDeltaTable``: a table other engines write, declared in YAML by its URI, and observed.

Example ``defs/<name>/defs.yaml``::

    type: upsert_pipeline.components.ObservedDeltaTable
    attributes:
      name: partner_events
      uri: s3://partner-lake/events   # or a path; a relative path is under the project folder

Each observation records every commit since the last one with its counts; see
``upsert_pipeline.observed``.
"""

from pathlib import Path

import dagster as dg
from pydantic import Field

from upsert_pipeline.delta.observe import DEFAULT_MAX_COMMITS
from upsert_pipeline.observed import build_observed_table


class ObservedDeltaTable(dg.Component, dg.Model, dg.Resolvable):
    """A Delta table this code location does not write, observed commit by commit."""

    name: str = Field(description="The asset name the table is observed as.")
    uri: str = Field(
        description=(
            "The table's URI: s3://..., or a path (relative paths are under the project folder)."
        )
    )
    description: str | None = Field(default=None, description="Shown in the Dagster UI.")
    max_commits: int = Field(
        default=DEFAULT_MAX_COMMITS,
        gt=0,
        description="The most commits one observation records (the newest); older ones skipped.",
    )
    storage_options: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Object-store options in delta-rs's spelling (AWS_REGION, AWS_ENDPOINT_URL, ...); "
            "credentials belong in the environment ({{ env.NAME }}), never in this file."
        ),
    )

    def table_uri(self, project_root: Path) -> str:
        """``uri``, with a relative path resolved under ``project_root``."""
        if "://" in self.uri or Path(self.uri).is_absolute():
            return self.uri
        return str(project_root / self.uri)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """The table's observable source asset."""
        asset = build_observed_table(
            self.name,
            self.table_uri(context.project_root),
            description=self.description,
            max_commits=self.max_commits,
            storage_options=self.storage_options or None,
        )
        return dg.Definitions(assets=[asset])
