"""Deployment tooling for the Dagster instance; not part of the code location (not in the image)."""
