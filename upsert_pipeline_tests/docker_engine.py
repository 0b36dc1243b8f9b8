"""A real Docker engine and the project's compose stack on it, for the tests.

``docker_engine`` uses the engine that runs, or starts Debian's ``dockerd`` (overlay2) and stops
it again afterwards; ``ComposeStack`` runs ``docker-compose`` (Debian's 1.29) on the project's own
docker-compose.yml under a unique project name, with its own ``.env`` (free loopback ports, its
own network and logs volume), and removes every container, network and volume it made.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from upsert_pipeline_tests.deployment import COMPOSE_FILE
from upsert_pipeline_tests.docker_standins import docker, docker_command
from upsert_pipeline_tests.processes import free_port
from upsert_pipeline_tests.webserver import PROJECT_DIR

APP_IMAGE = "upsert-pipeline:latest"
DOCKERD = "/usr/sbin/dockerd"
DOCKER_SOCKET = Path("/var/run/docker.sock")
ENGINE_START_TIMEOUT_S = 60.0
ENGINE_STOP_TIMEOUT_S = 60.0
# Variables of the compose file's .env that must come from the stack's own file, not the caller.
ENV_FILE_PREFIXES = ("POSTGRES_", "WEBSERVER_", "MINIO_", "UPSERT_PIPELINE_", "RUN_", "DOCKER_")


def engine_running() -> bool:
    return docker("info", check=False, timeout=30).returncode == 0


@contextlib.contextmanager
def docker_engine(log_path: Path) -> Iterator[bool]:
    """The running Docker engine, or Debian's ``dockerd`` started for the block and stopped after
    it (as root; the images it built stay in /var/lib/docker for the next run).

    Yields:
        Whether this block started the engine.

    Raises:
        RuntimeError: No engine runs and none can be started here.
    """
    docker_command()  # a client must exist
    if engine_running():
        yield False
        return
    if not Path(DOCKERD).exists() or os.geteuid() != 0:
        raise RuntimeError(
            f"no Docker engine runs and {DOCKERD} cannot be started here (needs root and "
            "Debian's docker.io: `make system-deps`)"
        )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [DOCKERD, "--storage-driver", "overlay2"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + ENGINE_START_TIMEOUT_S
        while not engine_running():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield True
    finally:
        # dockerd stops the containers it runs and the containerd it started itself.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=ENGINE_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=ENGINE_STOP_TIMEOUT_S)


def build_app_image() -> None:
    """The project's Dockerfile, built with BuildKit (``RUN --mount``; docker-compose 1.29's
    builder cannot), under the name the compose file gives it."""
    docker("build", "--quiet", "--tag", APP_IMAGE, str(PROJECT_DIR), timeout=1200)


@dataclass
class ComposeStack:
    """One ``docker-compose`` project of the project's docker-compose.yml."""

    project: str
    env_file: Path
    settings: dict[str, str]
    up_seconds: float = 0.0  # how long the first `up` took to a ready stack

    @property
    def webserver_url(self) -> str:
        return f"http://127.0.0.1:{self.settings['WEBSERVER_HOST_PORT']}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.settings['MINIO_API_HOST_PORT']}"

    @property
    def network(self) -> str:
        return self.settings["UPSERT_PIPELINE_STACK"]

    def compose(self, *args: str, timeout: float = 300) -> "subprocess.CompletedProcess[str]":
        compose = shutil.which("docker-compose")
        if not compose:
            raise RuntimeError("docker-compose is not installed: `make system-deps`")
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_FILE_PREFIXES)}
        result = subprocess.run(
            [compose, "--project-name", self.project, "--file", str(COMPOSE_FILE),
             "--env-file", str(self.env_file), *args],
            cwd=PROJECT_DIR,
            env={**env, "DOCKER_HOST": f"unix://{DOCKER_SOCKET}"},
            capture_output=True,
            text=True,
            timeout=timeout,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(
                f"docker-compose {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def config(self) -> dict[str, Any]:
        import yaml

        return dict(yaml.safe_load(self.compose("config").stdout))

    def container(self, service: str) -> dict[str, Any]:
        """``docker inspect`` of the service's (one) container."""
        ids = self.compose("ps", "--all", "-q", service).stdout.split()
        if len(ids) != 1:
            raise RuntimeError(f"{service}: {len(ids)} containers")
        return dict(json.loads(docker("inspect", ids[0]).stdout)[0])

    def logs(self, services: Sequence[str] = ()) -> str:
        return self.compose("logs", "--no-color", *services).stdout

    def run_containers(self) -> list[dict[str, Any]]:
        """Every container the run launcher started for this stack (the label its
        --container-context gives them)."""
        label = f"label=io.upsert-pipeline.stack={self.network}"
        ids = docker("ps", "--all", "-q", "--filter", label).stdout.split()
        return [json.loads(docker("inspect", cid).stdout)[0] for cid in ids]


def stack_settings(name: str, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """A ``.env`` for one stack: fresh secrets, free loopback ports, its own network and logs
    volume, the Docker socket's group."""
    return {
        "POSTGRES_USER": "dagster",
        "POSTGRES_PASSWORD": uuid.uuid4().hex,
        "POSTGRES_DB": "dagster",
        "MINIO_ROOT_USER": "upsert-pipeline",
        "MINIO_ROOT_PASSWORD": uuid.uuid4().hex,
        "WEBSERVER_HOST_PORT": str(free_port()),
        "MINIO_API_HOST_PORT": str(free_port()),
        "MINIO_CONSOLE_HOST_PORT": str(free_port()),
        "UPSERT_PIPELINE_STACK": name,
        "DOCKER_SOCKET_GID": str(DOCKER_SOCKET.stat().st_gid),
        **dict(overrides or {}),
    }


@contextlib.contextmanager
def compose_stack(work_dir: Path) -> Iterator[ComposeStack]:
    """A stack of the compose file, torn down (containers, run containers, network, volumes)
    when the block exits."""
    name = f"upsert-pipeline-test-{uuid.uuid4().hex[:8]}"
    settings = stack_settings(name)
    env_file = work_dir / "stack.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    stack = ComposeStack(project=name, env_file=env_file, settings=settings)
    try:
        yield stack
    finally:
        for container in stack.run_containers():
            docker("rm", "--force", container["Id"], check=False)
        stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "20")
