"""The components the defs folder instantiates: ``FeedComponent``, one per ``defs/<feed>/``, and
``ObservedDeltaTable``, one per table other engines write (``defs/<name>/``)."""

from upsert_pipeline.components.feed import FeedComponent
from upsert_pipeline.components.observed_table import ObservedDeltaTable

__all__ = ["FeedComponent", "ObservedDeltaTable"]
