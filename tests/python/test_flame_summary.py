"""The profile summary (scripts/checks/flame_summary.py) counts self and inclusive samples of
folded stacks, each frame once per stack, and leaves the runtime's plumbing out."""
import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location(
    "flame_summary", ROOT / "scripts/checks/flame_summary.py"
)
flame_summary = importlib.util.module_from_spec(spec)
spec.loader.exec_module(flame_summary)


def test_self_and_inclusive_counts(tmp_path):
    folded = tmp_path / "registration-get.folded"
    folded.write_text(
        "tokio-rt-worker;tokio::runtime::task::raw::poll;app::read;sqlx::fetch 6\n"
        "tokio-rt-worker;app::read;app::read;h2::write 3\n"
        "tokio-rt-worker;h2::write::h0123456789abcdef 1\n"
        "not a stack line\n"
    )
    total, self_time, inclusive = flame_summary.summarise(str(folded))
    assert total == 10
    assert self_time == {"sqlx::fetch": 6, "h2::write": 4}
    # app::read twice on one stack counts once; the hash suffix is dropped
    assert inclusive == {"app::read": 9, "sqlx::fetch": 6, "h2::write": 4}


def test_the_page_names_each_profile(tmp_path, capsys):
    folded = tmp_path / "postgres-get.folded"
    folded.write_text("postgres;exec_bind_message;ExecScan 4\n")
    flame_summary.main([str(folded)])
    page = capsys.readouterr().out
    assert "## postgres-get (weight 4)" in page
    assert "| 100.0 | `ExecScan` |" in page
