"""The command line: fast --help, run + aggregate round trip, one-line errors for bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fakes import make_workspace
from typer.testing import CliRunner

from mjbench.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_help_imports_no_heavy_library():
    code = (
        "import sys\nfrom mjbench.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'pandas', 'transformers', 'open_clip', 'datasets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws")


def test_run_then_aggregate_reproduces_metrics(ws: Path, tmp_path: Path):
    out = tmp_path / "run"
    res = invoke("run", "--tasks", "mem", "--judges", "bright,bright-pair", "--out", str(out), "-I", str(ws), "-q")
    assert res.exit_code == 0, res.output
    assert "requests computed" in res.output
    again = invoke("aggregate", str(out / "records.jsonl"), "--out", str(tmp_path / "agg"))
    assert again.exit_code == 0, again.output
    assert (tmp_path / "agg" / "metrics.csv").read_text() == (out / "metrics.csv").read_text()
    assert (tmp_path / "agg" / "leaderboard.md").read_text() == (out / "leaderboard.md").read_text()


def test_aggregate_reads_csv_from_another_producer(tmp_path: Path):
    csv = tmp_path / "theirs.csv"
    csv.write_text(
        "judge,task,perspective,subcategory,item_id,scale,label,score_0,score_1,pred\n"
        "other,t,alignment,object,1,1-10,0,8,3,\n"
        "other,t,alignment,object,2,1-10,1,5,5,\n"
        "other,t,alignment,count,3,1-10,1,2,9,1\n"
    )
    res = invoke("aggregate", str(csv), "--out", str(tmp_path / "agg"))
    assert res.exit_code == 0, res.output
    import pandas as pd

    m = pd.read_csv(tmp_path / "agg" / "metrics.csv")
    row = m[(m.subcategory == "ALL") & (m.metric == "acc_with_tie")].iloc[0]
    assert row.value == pytest.approx(2 / 3) and row.n == 3


@pytest.mark.parametrize(
    "args,needle",
    [
        (["run", "--judges", "brigt", "--tasks", "mem"], "unknown judge 'brigt'; did you mean 'bright'"),
        (["run", "--judges", "bright", "--tasks", "men"], "unknown task or suite 'men'"),
        (["run", "--judges", "missing.yaml"], "judge file not found: missing.yaml"),
        (["aggregate", "nope.jsonl", "--out", "x"], "records file not found: nope.jsonl"),
        (["judges", "show", "brigt"], "did you mean 'bright'"),
    ],
)
def test_bad_input_is_one_line(ws: Path, args: list[str], needle: str):
    if args[0] in ("run", "judges"):
        args = [*args, "-I", str(ws)]
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert needle in res.output
    assert "Traceback" not in res.output


def test_malformed_judge_yaml_names_the_file(ws: Path):
    bad = ws / "bad.yaml"
    bad.write_text("name: x\nadapter: test-brightness\nmode: sideways\n")
    res = runner.invoke(app, ["run", "--judges", str(bad), "--tasks", "mem", "-I", str(ws)])
    assert res.exit_code == 2 and "bad.yaml: mode:" in res.output


def test_judges_list_shows_availability(ws: Path):
    res = invoke("judges", "list", "-I", str(ws))
    assert res.exit_code == 0
    assert "bright" in res.output and "test-brightness" in res.output


def test_default_run_end_to_end_reduced(tmp_path: Path):
    """`mjbench run` with the embedded defaults (all six perspectives, offline judges), 3 items per task."""
    out = tmp_path / "default"
    res = invoke("run", "--limit", "3", "--out", str(out), "-q")
    assert res.exit_code == 0, res.output
    import pandas as pd

    metrics = pd.read_csv(out / "metrics.csv")
    assert set(metrics.perspective) == {"alignment", "safety", "quality", "bias", "composition", "visualization"}
    assert set(metrics.judge) == {"random", "sharpness", "brisque"}
    board = (out / "leaderboard.md").read_text()
    assert "| sharpness |" in board and "bias ACC" in board
    for name in ("alignment", "safety", "quality", "bias", "composition", "visualization"):
        assert (out / "reports" / f"{name}.md").is_file()


def test_same_command_same_numbers(tmp_path: Path):
    """Two runs from empty stores give byte-identical records and metrics (BRISQUE included)."""
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        assert invoke("run", "--tasks", "synthetic-alignment", "--limit", "12", "--out", str(out), "-q").exit_code == 0
    for name in ("records.jsonl", "metrics.csv", "leaderboard.md"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
