"""`telemetry bench pipeline` rewrites BENCHMARKS.md but keeps the section `telemetry bench lake` owns."""

from fleet.bench.lakehouse import SECTION_BEGIN, SECTION_END
from fleet.bench.report import _other_benchmarks


def test_the_lake_section_survives_a_pipeline_rewrite(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    section = f"{SECTION_BEGIN}\n## Lakehouse\n| step | rows |\n{SECTION_END}"
    path.write_text(f"# Benchmarks\nold pipeline figures\n\n{section}\ntrailing words\n")
    assert _other_benchmarks(path) == f"\n{section}\n"
    path.write_text("# Benchmarks\nno lake section yet\n")
    assert _other_benchmarks(path) == ""
    assert _other_benchmarks(tmp_path / "missing.md") == ""


def test_the_live_section_survives_too_after_the_lake_one(tmp_path):
    from fleet.bench import live as bench_live

    path = tmp_path / "BENCHMARKS.md"
    lake = f"{SECTION_BEGIN}\n## Lakehouse\n{SECTION_END}"
    live = f"{bench_live.SECTION_BEGIN}\n## Live\n| vehicles |\n{bench_live.SECTION_END}"
    path.write_text(f"# Benchmarks\nold\n\n{live}\nmiddle\n{lake}\n")
    assert _other_benchmarks(path) == f"\n{lake}\n\n{live}\n"
    section = f"{bench_live.SECTION_BEGIN}\n## Live\nnew figures\n{bench_live.SECTION_END}"
    bench_live.write_section(path, section)
    text = path.read_text()
    assert "new figures" in text and "| vehicles |" not in text and text.count(bench_live.SECTION_BEGIN) == 1 and lake in text
