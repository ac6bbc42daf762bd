"""`telemetry bench pipeline` rewrites BENCHMARKS.md but keeps the section `telemetry bench lake` owns."""

from fleet.bench_lake import SECTION_BEGIN, SECTION_END
from fleet.bench_report import _other_benchmarks


def test_the_lake_section_survives_a_pipeline_rewrite(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    section = f"{SECTION_BEGIN}\n## Lakehouse\n| step | rows |\n{SECTION_END}"
    path.write_text(f"# Benchmarks\nold pipeline figures\n\n{section}\ntrailing words\n")
    assert _other_benchmarks(path) == f"\n{section}\n"
    path.write_text("# Benchmarks\nno lake section yet\n")
    assert _other_benchmarks(path) == ""
    assert _other_benchmarks(tmp_path / "missing.md") == ""
