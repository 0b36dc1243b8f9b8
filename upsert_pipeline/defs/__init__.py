"""The defs folder: one sub-folder per feed, each a ``defs.yaml`` of a ``FeedComponent``."""
