"""Every benchmark family still runs (quick sizes) and yields well-formed rows: benchmarks must not rot."""
import json
import math

import pytest

from benchmarks import harness, run as bench_run


@pytest.mark.slow
@pytest.mark.parametrize("family", bench_run.families())
def test_family_runs_quickly_and_reports_ratios(family, tmp_path):
    out = tmp_path / "rows.json"
    assert bench_run.main(["--only", family, "--device", "cpu", "--quick", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert rows and all(r["family"] == family for r in rows)
    for r in rows:
        assert r["ours_ms"] > 0 and r["baseline_ms"] > 0 and math.isfinite(r["speedup"])
        assert r["status"] in ("", "PASS", "MISS")


def test_table_marks_targets():
    rows = [harness.Row("f", "c", "s", "cpu", 1.0, "stock", 3.0, target=2.0),
            harness.Row("f", "c", "s", "cpu", 2.0, "stock", 3.0, target=2.0)]
    table = harness.format_table(rows)
    assert "3.00× | ≥2× PASS" in table and "1.50× | ≥2× MISS" in table
