"""Peak memory of one path, run once in a fresh process: ``python -m bench.probe '<json>'``.

What is measured is the process's resident set (Linux ``/proc/self/status``), which counts the
Rust and C allocations of delta-rs, polars and Arrow as well as Python's (``tracemalloc`` would
see Python's only). After its imports the child reads its current RSS (the baseline), resets the
kernel's high-water mark (``echo 5 > /proc/self/clear_refs``), runs the path once and reads the
high-water mark ``VmHWM``: the path's peak RSS. ``getrusage``'s ``ru_maxrss`` is not used: it
cannot be reset, and a child started by a large parent can inherit the parent's figure.
For ``project_held`` the baseline is taken after the table's log is loaded, because the merge
already holds that snapshot: what is left is the count itself.
"""

import datetime as dt
import json
import subprocess
import sys
from typing import Any

from bench import counters
from bench.data import TableSpec, upsert_batch
from bench.timing import timed


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _baseline_kib() -> int:
    """The current RSS, after which the high-water mark restarts from it."""
    rss = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    return rss


def _run(request: dict[str, Any]) -> dict[str, Any]:
    from deltalake import DeltaTable

    path = request["path"]
    uri = request["uri"]
    options = request.get("storage_options")
    column = request["column"]
    day = dt.date.fromisoformat(request["day"])
    if path == "project_held":
        table = DeltaTable(uri, storage_options=options)
        baseline = _baseline_kib()
        seconds, value = timed(lambda: counters.project_held(table, column, day))
    elif path == "upsert":
        from upsert_pipeline.delta import upsert

        spec = TableSpec(**request["spec"])
        batch = upsert_batch(spec, seed=99, **request["batch"])
        baseline = _baseline_kib()
        seconds, result = timed(
            lambda: upsert(
                uri, batch, keys=["order_id"], partition={column: day}, storage_options=options
            )
        )
        value = (result.table_rows, result.partition_rows)
    else:
        counter = counters.SCANS[path]
        baseline = _baseline_kib()
        seconds, value = timed(lambda: counter(uri, column, day, options))
    return {
        "path": path,
        "value": list(value),
        "seconds": seconds,
        "baseline_rss_mib": baseline / 1024,
        "peak_rss_mib": _status_kib("VmHWM") / 1024,
    }


def measure(request: dict[str, Any], *, timeout: float = 1800) -> dict[str, Any]:
    """Runs one path in a fresh Python process and returns its report (see the module doc).

    Args:
        request: ``path`` (a counter name or ``"upsert"``), ``uri``, ``column``, ``day``
            (ISO), optional ``storage_options``; for ``"upsert"`` also ``spec`` (``TableSpec``
            fields) and ``batch`` (``upsert_batch`` keywords, ``day_index`` included).
        timeout: Seconds before the child is killed.

    Returns:
        ``value``, ``seconds``, ``baseline_rss_mib``, ``peak_rss_mib`` and ``added_rss_mib``.
    """
    completed = subprocess.run(
        [sys.executable, "-m", "bench.probe", json.dumps(request)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode:
        raise RuntimeError(f"probe {request['path']} failed:\n{completed.stderr[-4000:]}")
    report: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    report["added_rss_mib"] = report["peak_rss_mib"] - report["baseline_rss_mib"]
    return report


if __name__ == "__main__":
    print(json.dumps(_run(json.loads(sys.argv[1]))))
