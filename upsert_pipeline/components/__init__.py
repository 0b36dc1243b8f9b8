"""The components the defs folder instantiates: ``FeedComponent``, one per ``defs/<feed>/``."""

from upsert_pipeline.components.feed import FeedComponent

__all__ = ["FeedComponent"]
