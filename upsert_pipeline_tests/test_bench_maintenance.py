"""The maintenance benchmark's quick mode: it compacts, keeps every count, and times both tables
side by side on the same work. (No timing is asserted.)"""

from bench.maintenance import END, QUICK, START, markdown, replace_section, run


def test_quick_mode_compacts_and_compares_like_with_like(tmp_path):
    results = run(tmp_path / "work", QUICK)

    assert results["partitions_compacted"] == QUICK.partitions
    assert results["files_after_maintenance"] == QUICK.partitions
    per_partition = QUICK.redeliveries + 1
    assert results["files_before_maintenance"] == QUICK.partitions * per_partition
    assert results["row_counts_unchanged"]
    samples = results["samples"]
    for op in ("upsert", "log_count", "scan_count"):
        assert len(samples[f"{op}_before"]["samples_s"]) == QUICK.rounds
        assert len(samples[f"{op}_after"]["samples_s"]) == QUICK.rounds
    assert not (tmp_path / "work").exists()


def test_the_report_section_replaces_its_previous_version():
    results = {
        "plan": QUICK.__dict__,
        "ratios_before_over_after": {"upsert": 2.0, "log_count": 3.0, "scan_count": 4.0},
        "samples": {
            f"{op}_{side}": {"median_s": 0.01}
            for op in ("upsert", "log_count", "scan_count")
            for side in ("before", "after")
        },
        "generated_at": "now",
        "files_before_maintenance": 15,
        "files_after_maintenance": 3,
        "versions_before_maintenance": 16,
        "partitions_compacted": 3,
        "maintain_s": 0.1,
        "row_counts_unchanged": True,
        "load_average_at_start": 1.0,
    }
    section = markdown(results, "python -m bench.maintenance --quick")
    assert "| `upsert` of a re-delivery | 10.0 ms | 10.0 ms | 2.00x |" in section
    report = replace_section("# Benchmarks\n", section)
    assert report.count(START) == report.count(END) == 1
    again = replace_section(report.replace("2.00x", "9.99x"), section)
    assert again == report
