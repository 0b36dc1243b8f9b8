"""bench.beyond_counts on a tiny table: both merge paths do the same merge, and the scan and the
log give the same profile (the bench asserts both). Timings are not looked at."""

from bench.base_table import BatchPlan, prepare
from bench.beyond_counts import run
from bench.data import TableSpec


def test_the_bench_compares_like_with_like(tmp_path):
    plan = BatchPlan(TableSpec("orders", 20_000, 20, 4), updates=300, inserts=300)
    base = prepare(tmp_path, plan)

    report = run(base, rounds=1)

    assert report["counts"] == {"inserted": 300, "updated": 300}
    for path in ("upsert", "upsert_with_facts", "log_profile", "scan_profile"):
        assert len(report["paths"][path]["samples_s"]) == 1
    assert report["facts_vs_upsert"] > 0 and report["scan_profile_vs_log_profile"] > 0
