"""The command line: fast --help, run + aggregate round trip, one-line errors for bad input."""

from __future__ import annotations

import os
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


def test_run_then_aggregate_reproduces_metrics(tmp_path: Path):
    ws = make_workspace(tmp_path / "ws", broken_item=None)
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


def test_incomplete_run_exits_1_with_a_failure_summary(ws: Path, tmp_path: Path):
    res = runner.invoke(app, ["run", "--tasks", "mem", "--judges", "bright", "--out", str(tmp_path / "r"),
                              "-I", str(ws), "-q"])
    assert res.exit_code == 1, res.output
    tail = res.output.strip().splitlines()[-4:]
    assert tail[0] == "incomplete: 1 request(s) ended in error"
    assert tail[1].strip() == "judge bright: 1 of 15 request(s) failed"
    assert "1 x item i5: image file not found" in tail[2]
    assert tail[3].startswith("re-run the same command to retry exactly those")


def test_server_that_is_not_there_fails_every_request_and_exits_1(ws: Path, tmp_path: Path):
    """openai-compatible-local with no server: every request an error, exit 1 (it used to exit 0)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    judge = tmp_path / "local.yaml"
    judge.write_text(f"name: local\nadapter: openai\nmodel: m\nbase_url: http://127.0.0.1:{port}/v1\n"
                     "api_key_env: null\nmax_retries: 0\ntimeout_s: 5\nscales: ['1-10']\n")
    res = runner.invoke(app, ["run", "--tasks", "mem", "--judges", str(judge), "--out", str(tmp_path / "r"),
                              "-I", str(ws), "-q"])
    assert res.exit_code == 1, res.output
    assert "judge local: 15 of 15 request(s) failed" in res.output
    import pandas as pd

    recs = pd.read_json(tmp_path / "r" / "records.jsonl", lines=True)
    assert len(recs) == 12 and (recs.status == "error").all()


def test_secrets_are_masked_in_records_and_messages(ws: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MJ_TEST_KEY", "sk-test-1234567890")
    (ws / "judges" / "leaky.yaml").write_text(
        "name: leaky\nadapter: test-async\nmax_retries: 0\napi_key_env: MJ_TEST_KEY\n"
        "options: {fail: 'bad key sk-test-1234567890'}\n")
    res = runner.invoke(app, ["run", "--tasks", "mem", "--judges", "leaky", "--out", str(tmp_path / "r"),
                              "-I", str(ws), "-q"])
    assert res.exit_code == 1 and "bad key ***" in res.output
    assert "sk-test-1234567890" not in res.output
    records = (tmp_path / "r" / "records.jsonl").read_text()
    assert "bad key ***" in records and "sk-test-1234567890" not in records


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_limit_below_one_is_a_usage_error(ws: Path, tmp_path: Path, limit: str):
    res = runner.invoke(app, ["run", "--tasks", "mem", "--judges", "bright", "--limit", limit,
                              "--out", str(tmp_path / "r"), "-I", str(ws)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.output.strip() == f"error: --limit must be a positive number of items per task, not {limit}"


def test_out_that_is_a_file_is_one_line(ws: Path, tmp_path: Path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    res = runner.invoke(app, ["run", "--tasks", "mem", "--judges", "bright", "--out", str(f), "-I", str(ws)])
    assert res.exit_code == 2 and res.output.strip() == f"error: --out {f}: exists and is not a folder"
    assert f.read_text() == "x"


def test_out_on_a_read_only_file_system_is_one_line(ws: Path):
    target = Path("/sys/mjbench-test-run")  # sysfs: read-only even for root in a container
    if os.access("/sys", os.W_OK) and not target.parent.is_mount():
        pytest.skip("no read-only file system at /sys here: cannot produce the fault")
    res = runner.invoke(app, ["run", "--tasks", "mem", "--judges", "bright", "--out", str(target), "-I", str(ws)])
    assert res.exit_code == 2, res.output
    assert res.output.startswith(f"error: --out {target}: cannot write there (") and "Traceback" not in res.output
    assert not target.exists()


def test_debug_shows_the_traceback(ws: Path, tmp_path: Path):
    res = runner.invoke(app, ["--debug", "run", "--tasks", "mem", "--judges", "bright", "--limit", "0",
                              "--out", str(tmp_path / "r"), "-I", str(ws)])
    assert res.exit_code != 0 and "limit must be a positive" in str(res.exception)
    from mjbench.errors import ConfigError

    assert isinstance(res.exception, ConfigError)
    runner.invoke(app, ["judges", "show", "bright", "-I", str(ws)])  # later commands: one-line errors again
    res = runner.invoke(app, ["run", "--judges", "bright", "--limit", "0", "-I", str(ws)])
    assert res.exit_code == 2 and res.output.startswith("error:")


def test_run_help_documents_exit_codes():
    res = invoke("run", "--help")
    text = " ".join(res.output.split())
    assert "Exit codes: 0 = every planned request has a final answer" in text
    assert "1 = the run finished but is incomplete" in text and "2 = usage or configuration error" in text
