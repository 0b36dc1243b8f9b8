"""The Dockerfile, without Docker: its stages and user, and its build stage's ``uv`` steps run
as written (offline, from uv's cache) into a virtualenv that must hold the code location and
nothing of the dev or bench groups."""

import os
import re
import shlex
import shutil
import subprocess

import pytest

from upsert_pipeline_tests.deployment import PROJECT_DIR

DOCKERFILE = PROJECT_DIR / "Dockerfile"
DEV_AND_BENCH_ONLY = ("pytest", "ruff", "mypy", "playwright", "hypothesis", "matplotlib", "moto")


def _instructions(text):
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in logical]


def _stages():
    """The Dockerfile's stages: a list of instruction lists, each starting with its FROM."""
    stages = []
    for instruction in _instructions(DOCKERFILE.read_text()):
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _default_arg(name):
    for instruction, arguments in _instructions(DOCKERFILE.read_text()):
        if instruction == "ARG" and arguments.startswith(f"{name}="):
            return arguments.split("=", 1)[1]
    raise AssertionError(f"no ARG {name}")


def test_two_stages_on_one_slim_python_311_base_and_a_non_root_user():
    build, runtime = _stages()
    assert build[0] == ("FROM", "${PYTHON_IMAGE} AS build")
    assert runtime[0] == ("FROM", "${PYTHON_IMAGE}")
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", _default_arg("PYTHON_IMAGE"))

    runtime_text = " ".join(arguments for _, arguments in runtime)
    # uv, compilers and the source tree stay in the build stage.
    assert "uv" not in re.findall(r"[\w-]+", runtime_text)
    assert not re.search(r"apt-get|gcc|build-essential|upsert_pipeline ", runtime_text)
    assert [a for i, a in runtime if i == "COPY" and a.startswith("--from")] == [
        "--from=build /opt/dagster/venv /opt/dagster/venv"
    ]
    users = [arguments for instruction, arguments in runtime if instruction == "USER"]
    assert users and users[-1] not in {"root", "0"}


def test_the_build_context_lets_in_what_the_dockerfile_copies_and_nothing_else():
    lines = (PROJECT_DIR / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*"  # everything excluded, then the allow-list
    allowed = {pattern.removeprefix("!").rstrip("/") for pattern in patterns if pattern[0] == "!"}
    copied = set()
    for stage in _stages():
        for instruction, arguments in stage:
            if instruction == "COPY" and not arguments.startswith("--from"):
                copied.update(shlex.split(arguments)[:-1])
    assert copied == allowed
    assert ".env" not in allowed and ".venv" not in allowed


@pytest.fixture
def build_stage_venv(tmp_path):
    """Replays the build stage: each COPY into a source folder, each ``uv`` RUN as written."""
    build = _stages()[0]
    source, venv = tmp_path / "src", tmp_path / "venv"
    source.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("UV_", "VIRTUAL_ENV")) and k != "PYTHONPATH"
    }
    commands = []
    for instruction, arguments in build:
        if instruction == "ENV":
            for assignment in shlex.split(arguments):
                name, value = assignment.split("=", 1)
                env[name] = value
        elif instruction == "COPY" and not arguments.startswith("--from"):
            *sources, _ = shlex.split(arguments)
            for name in sources:
                if (PROJECT_DIR / name).is_dir():
                    shutil.copytree(
                        PROJECT_DIR / name,
                        source / name,
                        ignore=shutil.ignore_patterns("__pycache__"),
                    )
                else:
                    shutil.copy(PROJECT_DIR / name, source / name)
        elif instruction == "RUN":
            command = [word for word in shlex.split(arguments) if not word.startswith("--mount")]
            assert command[0] == "uv", command
            commands.append(command)
            subprocess.run(
                # The uv that runs these tests (`uv run` sets UV), wherever `make` installed it.
                [os.environ.get("UV") or "uv", *command[1:]],
                cwd=source,
                env={
                    **env,
                    "UV_PROJECT_ENVIRONMENT": str(venv),
                    # No network here: everything comes from the cache `make install` filled.
                    "UV_OFFLINE": "1",
                    # Byte-compiling ~80 packages costs 10 s and changes nothing that is installed.
                    "UV_COMPILE_BYTECODE": "0",
                    "UV_LINK_MODE": "hardlink",
                },
                check=True,
                capture_output=True,
                timeout=300,
            )
    # The runtime stage's own COPYs (not --from) land under /opt/dagster, the venv's parent.
    for instruction, arguments in _stages()[1]:
        if instruction == "COPY" and not arguments.startswith("--from"):
            *sources, destination = shlex.split(arguments)
            target = tmp_path / destination.removeprefix("/opt/dagster/")
            for name in sources:
                if destination.endswith("/"):
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy(PROJECT_DIR / name, target / name)
                else:
                    shutil.copy(PROJECT_DIR / name, target)
    yield venv, commands
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_the_build_stage_installs_the_locked_runtime_dependencies_then_the_project(
    build_stage_venv,
):
    venv, commands = build_stage_venv
    assert commands == [
        ["uv", "sync", "--frozen", "--no-default-groups", "--no-install-project"],
        ["uv", "sync", "--frozen", "--no-default-groups", "--no-editable"],
    ]
    probe = (
        "import importlib.util, sys, upsert_pipeline.definitions as d, "
        "dagster_postgres, dagster_webserver, psycopg2\n"
        "jobs = {j.name for j in d.defs.resolve_all_job_defs()}\n"
        "assert jobs >= {'ingest_daily', 'ingest_orders'}, jobs\n"
        "keys = {a.key.to_user_string() for a in d.defs.assets}\n"
        "assert keys == {'orders', 'customers', 'maintenance/orders', 'maintenance/customers', "
        "'partner_events'}, keys\n"
        f"print(','.join(m for m in {DEV_AND_BENCH_ONLY!r} if importlib.util.find_spec(m)))\n"
        "print(d.__file__)\n"
    )
    clean = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe],
        cwd=venv,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    dev_and_bench, installed_at = result.stdout.splitlines()
    assert dev_and_bench == ""
    # Installed into the virtualenv, not an editable link back to the source folder.
    assert installed_at.startswith(str(venv / "lib"))
    for entry_point in ("dagster", "dagster-webserver", "dagster-daemon"):
        assert (venv / "bin" / entry_point).exists(), entry_point
