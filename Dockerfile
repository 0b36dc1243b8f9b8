# One image for the Dagster services of docker-compose.yml (the code location's gRPC server,
# dagster-webserver, dagster-daemon) and for the container each run is launched in.
# No `# syntax=` line: Debian's and Docker's BuildKit build RUN --mount without fetching a
# frontend image, so the build needs no registry beyond the two images named below.

# The same slim image in both stages: the virtualenv built in the first links to its interpreter.
# Pinned to a release (3.11.14) and Debian release (bookworm), like every image this deployment
# names: a rebuild months later gets the same interpreter.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- build: the locked dependencies, then the project, into /opt/dagster/venv ---------------------
FROM ${PYTHON_IMAGE} AS build
# uv pinned to the version .ci/run installs; it stays in this stage.
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/dagster/venv
WORKDIR /src
# Dependencies first, exactly as uv.lock pins them and without the dev and bench groups; this layer
# is rebuilt only when the lock changes. Every locked package ships a wheel: no compiler needed.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-default-groups --no-install-project
# Then the project itself, installed as a regular package (no editable link back to /src).
COPY README.md ./
COPY upsert_pipeline ./upsert_pipeline
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-default-groups --no-editable

# --- runtime: the virtualenv and the instance's configuration; no uv, no source tree ------------
FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 dagster \
    && useradd --system --uid 10001 --gid dagster --home-dir /opt/dagster --no-create-home dagster
ENV PATH=/opt/dagster/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home
COPY --from=build /opt/dagster/venv /opt/dagster/venv
# The feeds are YAML files in the installed package's defs folder; `load_from_defs_folder` finds
# them through the project's pyproject.toml ([tool.dg]), which it looks for in the package's
# parent folders: /opt/dagster is one of them.
COPY pyproject.toml /opt/dagster/pyproject.toml
COPY dagster.yaml workspace.yaml /opt/dagster/dagster_home/
# The mount point of the one named volume (the runs' captured logs), owned by the service user
# so a fresh volume inherits that. The lake and the landing zone are on the object store.
RUN mkdir -p /opt/dagster/dagster_home/storage \
    && chown -R dagster:dagster /opt/dagster/dagster_home
USER dagster
WORKDIR /opt/dagster
EXPOSE 3000 4000
