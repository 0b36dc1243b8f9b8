"""The read-only Delta tables Spark and Databricks wrote, in ``shared/fixtures/delta-tables``
beside the repository (its README gives their true row counts), and writable copies of them."""

import shutil
import subprocess
from pathlib import Path

_RELATIVE = Path("shared") / "fixtures" / "delta-tables"
_REPOSITORY = Path(__file__).resolve().parent.parent


def _origin() -> Path | None:
    """The checkout this one was cloned from, when that is a local folder."""
    result = subprocess.run(
        ["git", "-C", str(_REPOSITORY), "config", "--get", "remote.origin.url"],
        capture_output=True,
        text=True,
    )
    url = result.stdout.strip()
    return Path(url).resolve() if result.returncode == 0 and Path(url).is_dir() else None


def fixtures_dir() -> Path:
    """``<repository>/../shared/fixtures/delta-tables``: found by walking up from the tests (so a
    copy of them, e.g. mutmut's ``mutants/``, finds it), else beside the local checkout this
    one was cloned from (a clone in a temporary folder).

    Raises:
        FileNotFoundError: Neither has the folder.
    """
    origin = _origin()
    starts = [Path(__file__).resolve(), *([origin] if origin else [])]
    for start in starts:
        for folder in start.parents:
            if (folder / _RELATIVE).is_dir():
                return folder / _RELATIVE
    raise FileNotFoundError(f"{_RELATIVE} is not beside the repository or its origin")


def copy_fixture(name: str, tmp_path: Path) -> str:
    """A writable copy of the fixture table ``name`` under ``tmp_path``; its URI."""
    source = fixtures_dir() / name
    assert (source / "_delta_log").is_dir(), f"fixture table missing: {source}"
    target = tmp_path / name
    shutil.copytree(source, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    return str(target)
