"""One partition's materialization of ``orders``: lake and landing on S3 with added latency, beside
local disk.

``python -m bench.s3_materialize --out bench/results`` starts moto's S3 server and
``bench.latency_proxy`` in front of it (``bench.remote.s3_with_latency``), writes the same sample
landing batches to a local folder and to an S3 bucket, and then materializes ``orders`` partitions
through Dagster (``dg.materialize`` of the code location's own asset, its inline checks included,
resources configured only by URIs and storage options), alternating local and S3 in a rotating
order (``bench.timing.interleave``). Each round loads one new day into each lake (a first load:
all rows inserted) and then re-runs that day (every row unchanged, no commit). A warm-up round
(imports, the conditional-PUT probe of the bucket) is not recorded. Every materialization's counts
are compared between the two stores.
"""

import argparse
import datetime as dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg

from bench.remote import _client, s3_with_latency, storage_options
from bench.timing import Samples, interleave, ratio
from upsert_pipeline.definitions import defs
from upsert_pipeline.feeds import DEFAULT_START as START_DATE
from upsert_pipeline.resources import DeltaMergeResource, LandingResource
from upsert_pipeline.sample_data import generate

COUNT_KEYS = (
    "upsert/source_rows",
    "upsert/rows_inserted",
    "upsert/rows_unchanged",
    "delta/version",
)


def _materialize(
    landing: LandingResource, lake: DeltaMergeResource, day: str, instance: dg.DagsterInstance
) -> dict[str, Any]:
    asset = defs.get_assets_def(dg.AssetKey("orders"))
    result = dg.materialize(
        [asset],
        partition_key=day,
        resources={"landing": landing, "lake": lake},
        instance=instance,
        selection=[asset.key],
    )
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    return {key: metadata[key].value for key in COUNT_KEYS}


def run(*, rounds: int, delay_ms: float, work: Path) -> dict[str, Any]:
    """Measures ``rounds`` new days (first load, then a re-run) on local disk and on S3."""
    days = [
        (dt.date.fromisoformat(START_DATE) + dt.timedelta(days=i)).isoformat()
        for i in range(rounds + 1)
    ]
    with s3_with_latency(delay_ms, lifetime_s=1800) as (moto_port, proxy_port):
        client = _client(moto_port)
        for bucket in ("lake", "landing"):
            client.create_bucket(Bucket=bucket)
        # Set-up straight to moto (not through the proxy): the same batches in both places.
        direct = storage_options(moto_port)
        saved = {name: os.environ.get(name) for name in direct}
        os.environ.update(direct)
        try:
            generate("s3://landing/feeds", days=len(days))
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        generate(work / "landing", days=len(days))

        remote = {k: v for k, v in storage_options(proxy_port).items() if k != "conditional_put"}
        stores = {
            "local": (
                LandingResource(uri=str(work / "landing")),
                DeltaMergeResource(lake_uri=str(work / "lake")),
            ),
            f"s3 +{delay_ms:g} ms": (
                LandingResource(uri="s3://landing/feeds", storage_options=remote),
                DeltaMergeResource(lake_uri="s3://lake/lake", storage_options=remote),
            ),
        }
        samples: dict[str, Samples] = {}
        with dg.instance_for_test() as instance:
            for index, day in enumerate(days):
                for step in ("first load", "re-run"):
                    methods = {
                        f"{name} {step}": (
                            lambda store=store, day=day: _materialize(*store, day, instance)
                        )
                        for name, store in stores.items()
                    }
                    measured = interleave(methods, rounds=1, round_offset=index)
                    if index == 0:
                        continue  # warm-up: imports, first table creation, the probe
                    for name, sample in measured.items():
                        samples.setdefault(name, Samples()).seconds.extend(sample.seconds)
                        samples[name].values.extend(sample.values)
    names = list(stores)
    agree = all(
        samples[f"{names[0]} {step}"].values == samples[f"{names[1]} {step}"].values
        for step in ("first load", "re-run")
    )
    return {
        "delay_ms": delay_ms,
        "rounds": rounds,
        "days": days[1:],
        "store": "moto S3 server (subprocess, 127.0.0.1) behind bench.latency_proxy",
        "counts_agree": agree,
        "samples": {name: sample.as_json() for name, sample in samples.items()},
        "ratios": {
            step: ratio(samples[f"{names[1]} {step}"], samples[f"{names[0]} {step}"])
            for step in ("first load", "re-run")
        },
        "values": {name: sample.values for name, sample in samples.items()},
    }


def markdown(result: dict[str, Any]) -> str:
    """The result as a table: medians per store and step, and the S3 ÷ local ratio."""
    samples = result["samples"]
    lines = [
        "| step | local disk | S3 + {:g} ms | S3 ÷ local |".format(result["delay_ms"]),
        "|---|---|---|---|",
    ]
    for step, value in result["ratios"].items():
        local = samples[f"local {step}"]["median_s"]
        remote = samples[f"s3 +{result['delay_ms']:g} ms {step}"]["median_s"]
        lines.append(f"| {step} | {local:.2f} s | {remote:.2f} s | {value:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    """Command line: ``python -m bench.s3_materialize --out DIR [--rounds N] [--delay-ms D]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        result = run(rounds=args.rounds, delay_ms=args.delay_ms, work=Path(work))
    result["load_average_at_end"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "s3_materialize.json").write_text(json.dumps(result, indent=2, default=str))
    print(markdown(result))
    print(f"counts agree: {result['counts_agree']}")


if __name__ == "__main__":
    main()
