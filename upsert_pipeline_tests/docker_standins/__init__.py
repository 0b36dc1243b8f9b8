"""Stand-ins for the images docker-compose.yml and the Dockerfile name, for machines that reach
no container registry.

Each image the deployment names is used as it is when the engine has it or can pull it. When it
cannot be pulled, a stand-in is built under that exact name, so the compose file and the
Dockerfile under test are the ones users run, unchanged:

- ``python:3.11-slim-bookworm``: Debian bookworm's python3.11 (``mmdebstrap``), with the
  official image's ``/usr/local/bin/python3`` and the host's CA certificates (a TLS-inspecting
  proxy may sit between the build and PyPI);
- ``ghcr.io/astral-sh/uv:<v>``: ``/uv`` and ``/uvx`` from the uv wheel of that version on PyPI;
- ``postgres:<major>``: Debian's postgresql-<major> (trixie) with an entrypoint honouring
  ``POSTGRES_USER`` / ``POSTGRES_PASSWORD`` / ``POSTGRES_DB`` as the official image does;
- ``quay.io/minio/minio`` and ``quay.io/minio/mc``: moto's S3 server (it honours
  ``If-None-Match: *``), durable across restarts, and an ``mc`` with the subcommands the compose
  file uses (see ``minio/``).

A stand-in carries the hash of its recipe (and of the images it is built on) in a label; one
whose label matches is not built again, and a file lock keeps two test sessions from building the
same one at once.
"""

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECIPE_LABEL = "io.upsert-pipeline.stand-in-recipe"
LOCK_FILE = Path(tempfile.gettempdir()) / "upsert-pipeline-stand-ins.lock"
PULL_TIMEOUT_S = 60
BUILD_TIMEOUT_S = 1200
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# What the official images say in their metadata and the Dockerfile relies on.
PYTHON_ENV = (
    "PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG=C.UTF-8",
    f"SSL_CERT_FILE={HOST_CA_BUNDLE}",
)
SLIM_DPKG_OPTIONS = (
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
)


def docker_command() -> str:
    """Debian's docker client (it speaks the 20.10 engine's API and has BuildKit built in), else
    the one on PATH."""
    debian = Path("/usr/bin/docker")
    if debian.exists():
        return str(debian)
    found = shutil.which("docker")
    if not found:
        raise RuntimeError("no docker client: `make system-deps` installs Debian's docker.io")
    return found


def docker(
    *args: str, timeout: float = 120, check: bool = True
) -> "subprocess.CompletedProcess[str]":
    result = subprocess.run(
        [docker_command(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def image_label(image: str) -> str | None:
    """The stand-in recipe label of a local image; "" for a local image without one (a real
    image), None when the engine has no such image."""
    result = docker("image", "inspect", image, check=False)
    if result.returncode != 0:
        return None
    labels = json.loads(result.stdout)[0]["Config"].get("Labels") or {}
    return str(labels.get(RECIPE_LABEL, ""))


def image_id(image: str) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()


@dataclass(frozen=True)
class StandIn:
    """How to build one image's stand-in; ``inputs`` is everything its result depends on."""

    image: str
    inputs: Callable[[], Sequence[str]]
    build: Callable[[str, str], None]  # (image, recipe hash)

    def recipe_hash(self) -> str:
        digest = hashlib.sha256()
        for part in self.inputs():
            digest.update(part.encode())
            digest.update(b"\0")
        return digest.hexdigest()[:32]


def _files(folder: Path) -> list[str]:
    return [f"{p.name}:{p.read_text()}" for p in sorted(folder.iterdir()) if p.is_file()]


def _mmdebstrap_import(
    image: str,
    recipe: str,
    suite: str,
    packages: Sequence[str],
    hooks: Sequence[str],
    changes: Sequence[str],
) -> None:
    """A root filesystem of Debian ``suite`` with ``packages``, imported as ``image``."""
    with tempfile.TemporaryDirectory(prefix="stand-in-") as work:
        rootfs = Path(work) / "rootfs.tar"
        subprocess.run(
            [
                "mmdebstrap",
                "--quiet",
                "--variant=minbase",
                f"--include={','.join(packages)}",
                *SLIM_DPKG_OPTIONS,
                *(f"--customize-hook={hook}" for hook in hooks),
                '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
                suite,
                str(rootfs),
            ],
            check=True,
            capture_output=True,
            timeout=BUILD_TIMEOUT_S,
        )
        change_args = [arg for change in changes for arg in ("--change", change)]
        label = f"LABEL {RECIPE_LABEL}={recipe}"
        docker("import", *change_args, "--change", label, str(rootfs), image, timeout=600)


# --- python:3.11-slim-bookworm ----------------------------------------------------------------
PYTHON_PACKAGES = ("python3.11", "ca-certificates")
PYTHON_HOOKS = (
    # The host's bundle: it holds whatever CA a TLS-inspecting proxy on the way to PyPI uses.
    f"copy-in {HOST_CA_BUNDLE} /etc/ssl/certs/",
    'for n in python python3 python3.11; do ln -sf /usr/bin/python3.11 "$1/usr/local/bin/$n"; done',
)


def _python_inputs() -> list[str]:
    return ["bookworm", *PYTHON_PACKAGES, *PYTHON_HOOKS, *PYTHON_ENV, HOST_CA_BUNDLE.read_text()]


def _build_python(image: str, recipe: str) -> None:
    changes = [*(f"ENV {assignment}" for assignment in PYTHON_ENV), 'CMD ["python3"]']
    _mmdebstrap_import(image, recipe, "bookworm", PYTHON_PACKAGES, PYTHON_HOOKS, changes)


# --- postgres:<major> ---------------------------------------------------------------------------
def _postgres_major(image: str) -> str:
    match = re.fullmatch(r"postgres:(\d+)(\D.*)?", image)
    if not match:
        raise ValueError(f"no stand-in for {image}: expected postgres:<major>")
    return match.group(1)


def _postgres_inputs(image: str) -> list[str]:
    return ["trixie", f"postgresql-{_postgres_major(image)}", *_files(HERE / "postgres")]


def _build_postgres(image: str, recipe: str) -> None:
    major = _postgres_major(image)
    entrypoint = HERE / "postgres" / "entrypoint.sh"
    _mmdebstrap_import(
        image,
        recipe,
        # Debian's release that packages this major version (trixie: 17).
        "trixie",
        [f"postgresql-{major}"],
        [f"copy-in {entrypoint} /usr/local/bin/"],
        [
            f"ENV PATH=/usr/lib/postgresql/{major}/bin:/usr/local/sbin:/usr/local/bin:"
            "/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV PGDATA=/var/lib/postgresql/data",
            "ENV LANG=C.UTF-8",
            'ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]',
            "EXPOSE 5432",
        ],
    )


# --- ghcr.io/astral-sh/uv:<version> -------------------------------------------------------------
def _uv_version(image: str) -> str:
    return image.rsplit(":", 1)[1]


def _uv_inputs(image: str) -> list[str]:
    return [_uv_version(image), *_files(HERE / "uv")]


def _build_uv(image: str, recipe: str) -> None:
    with tempfile.TemporaryDirectory(prefix="stand-in-uv-") as work:
        context = Path(work)
        subprocess.run(
            [
                # The Python `make` installs uv with (the test's virtualenv has no pip).
                shutil.which("python3") or sys.executable, "-m", "pip", "download",
                "--quiet", "--no-deps",
                "--only-binary=:all:", "--platform", "manylinux2014_x86_64",
                "--dest", str(context / "wheel"), f"uv=={_uv_version(image)}",
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )  # fmt: skip
        (wheel,) = (context / "wheel").glob("uv-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                name = member.rsplit("/", 1)[-1]
                if ".data/scripts/" in member and name in {"uv", "uvx"}:
                    (context / name).write_bytes(archive.read(member))
                    (context / name).chmod(0o755)
        shutil.copy(HERE / "uv" / "Dockerfile", context / "Dockerfile")
        docker("build", "--label", f"{RECIPE_LABEL}={recipe}", "-t", image, str(context),
               timeout=BUILD_TIMEOUT_S)  # fmt: skip


# --- quay.io/minio/minio and quay.io/minio/mc ---------------------------------------------------
PROJECT_DOCKERFILE = HERE.parent.parent / "Dockerfile"


def dockerfile_images(dockerfile: Path = PROJECT_DOCKERFILE) -> tuple[str, str]:
    """The Python image (``ARG PYTHON_IMAGE``'s default) and the uv image (``COPY --from``)
    the project's Dockerfile builds from."""
    text = dockerfile.read_text()
    python = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    uv = re.search(r"^COPY --from=(\S+:\S+) ", text, re.MULTILINE)
    if not (python and uv):
        raise ValueError(f"{dockerfile}: no ARG PYTHON_IMAGE=... or COPY --from=<image>")
    return python.group(1), uv.group(1)


def _moto_version() -> str:
    return importlib.metadata.version("moto")


def _minio_inputs(target: str) -> list[str]:
    return [target, _moto_version(), *_files(HERE / "minio"), *map(image_id, dockerfile_images())]


def _build_minio(target: str) -> Callable[[str, str], None]:
    def build(image: str, recipe: str) -> None:
        docker(
            "build",
            "--target", target,
            "--build-arg", f"MOTO_VERSION={_moto_version()}",
            "--build-arg", f"PYTHON_IMAGE={dockerfile_images()[0]}",
            "--build-arg", f"UV_IMAGE={dockerfile_images()[1]}",
            "--label", f"{RECIPE_LABEL}={recipe}",
            "-t", image,
            str(HERE / "minio"),
            timeout=BUILD_TIMEOUT_S,
        )  # fmt: skip

    return build


def stand_in_for(image: str) -> StandIn:
    """The recipe of ``image``'s stand-in.

    Raises:
        ValueError: No stand-in is known for that image.
    """
    if re.fullmatch(r"python:3\.11[.\d]*-slim-bookworm", image):
        return StandIn(image, _python_inputs, _build_python)
    if image.startswith("postgres:"):
        return StandIn(image, lambda: _postgres_inputs(image), _build_postgres)
    if image.startswith("ghcr.io/astral-sh/uv:"):
        return StandIn(image, lambda: _uv_inputs(image), _build_uv)
    for target in ("minio", "mc"):
        if image.startswith(f"quay.io/minio/{target}:"):
            return StandIn(image, lambda t=target: _minio_inputs(t), _build_minio(target))
    raise ValueError(f"no stand-in recipe for {image}")


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    with LOCK_FILE.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_image(image: str) -> str:
    """Makes ``image`` available to the engine: as it is, pulled, or as a stand-in.

    Returns:
        How: "present", "pulled", "cached stand-in" or "built stand-in".
    """
    with _build_lock():
        label = image_label(image)
        if label == "":
            return "present"  # the real image (or one the user built): never replaced
        stand_in = stand_in_for(image)
        recipe = stand_in.recipe_hash()
        if label == recipe:
            return "cached stand-in"
        if (
            label is None
            and docker("pull", image, timeout=PULL_TIMEOUT_S, check=False).returncode == 0
        ):
            return "pulled"
        stand_in.build(image, recipe)
        return "built stand-in"


def ensure_images(images: Sequence[str]) -> dict[str, str]:
    """:func:`ensure_image` for each of ``images``, in order (bases before what builds on them)."""
    return {image: ensure_image(image) for image in images}
