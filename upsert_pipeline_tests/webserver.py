"""Starting and stopping a real ``dagster-webserver`` on a free loopback port, for browser tests."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from upsert_pipeline_tests.processes import free_port, stop_group

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFINITIONS_MODULE = "upsert_pipeline.definitions"
LOCATION_NAME = "upsert_pipeline.definitions"
READY_TIMEOUT_S = 60.0


def write_workspace(path: Path) -> Path:
    """A workspace file that loads the project's code location from its module."""
    path.write_text(
        "load_from:\n"
        "  - python_module:\n"
        f"      module_name: {DEFINITIONS_MODULE}\n"
        f"      location_name: {LOCATION_NAME}\n"
        f"      working_directory: {PROJECT_DIR}\n"
    )
    return path


def write_instance_config(dagster_home: Path) -> Path:
    """The ``dagster.yaml`` ``make dev`` writes (``deploy/dev_instance.yaml``): SQLite, no
    telemetry, no sign-up dialog, a run queue."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    shutil.copy(PROJECT_DIR / "deploy" / "dev_instance.yaml", config)
    return config


def graphql(base_url: str, query: str, variables: Mapping[str, Any] | None = None) -> Any:
    """The ``data`` of one GraphQL query (or mutation) to the webserver; raises on GraphQL
    errors."""
    body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
    request = urllib.request.Request(
        f"{base_url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.load(response)
    if payload.get("errors"):
        raise RuntimeError(f"GraphQL errors: {payload['errors']}")
    return payload["data"]


_LOCATIONS_QUERY = """{
  workspaceOrError {
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
}"""


def location_loaded(base_url: str) -> bool:
    """Whether the webserver answers and has loaded the code location; raises if it failed to."""
    try:
        data = graphql(base_url, _LOCATIONS_QUERY)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
    entries = data["workspaceOrError"].get("locationEntries") or []
    for entry in entries:
        location = entry["locationOrLoadError"] or {}
        if location.get("__typename") == "PythonError":
            raise RuntimeError(f"{entry['name']} failed to load: {location['message']}")
    return any(
        entry["name"] == LOCATION_NAME and entry["loadStatus"] == "LOADED" for entry in entries
    )


@contextlib.contextmanager
def running_webserver(
    *, dagster_home: Path, workspace: Path, env: Mapping[str, str], log_path: Path
) -> Iterator[str]:
    """Runs ``dagster-webserver`` until the block exits; yields its base URL once it is ready.

    The server runs in its own process group, which is terminated on exit, code server included.

    Args:
        dagster_home: The instance folder (``DAGSTER_HOME``).
        workspace: The workspace file to load.
        env: Extra environment variables for the server and its code server.
        log_path: Where the server's output goes (read it when the server does not come up).
    """
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    command = [
        str(Path(sys.executable).with_name("dagster-webserver")),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workspace",
        str(workspace),
    ]
    environment = {**os.environ, **env, "DAGSTER_HOME": str(dagster_home)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_DIR,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while not location_loaded(base_url):
                if process.poll() is not None:
                    raise RuntimeError(f"dagster-webserver exited: {log_path.read_text()}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"dagster-webserver not ready: {log_path.read_text()}")
                time.sleep(0.25)
            yield base_url
        finally:
            stop_group(process)
