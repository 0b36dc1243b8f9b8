"""Benchmarks of upsert_pipeline: counts from the commit against the scans they replace.

``python -m bench`` (``make bench``) runs every section; see ``bench/__main__.py``.
"""

import warnings

# The project's asset checks use a Dagster preview feature; its warning says nothing about speed.
warnings.filterwarnings("ignore", message=".*is currently in preview")
