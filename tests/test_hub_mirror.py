"""MJ-Bench as it is published on the hub, read from a local mirror (`--hub-mirror`, MJBENCH_HUB_MIRROR).

The mirror is built here with the layout the hub repository has (no configs, one Parquet file per 2024
perspective under data/, {bytes, path} image structs, plus two 2025-layout files under names no task knows),
and every shipped MJ-Bench task must load from it with the right counts; a wrong file name gets the listing.
The hub itself (listing, footer reads, downloads) is exercised with huggingface_hub's calls replaced, since no
test may reach the network."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mjbench.catalog import Catalog
from mjbench.cli import app
from mjbench.config import TaskConfig, load_task_file
from mjbench.errors import ConfigError, DataError
from mjbench.items import BiasItem
from mjbench.sources import load_task, make_source

REPO = "MJ-Bench/MJ-Bench"
REV = "4b9667374c71463f63ae663ddd88373d3ffc5ba9"


def png(color: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buf, format="PNG")
    return buf.getvalue()


def _image_column(n: int, seed: int) -> list[dict]:
    return [{"bytes": png(((seed * 40 + i * 7) % 256, i % 256, seed % 256)), "path": f"{seed}_{i}.png"}
            for i in range(n)]


def _write(path: Path, columns: dict[str, list]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema([(name, image if name.startswith("image") else pa.array(values).type)
                        for name, values in columns.items()])
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns, schema=schema), path)


def _pairs_2024(n: int, seed: int, labels: list[int] | None = None) -> dict[str, list]:
    return {"caption": [f"caption {seed}-{i}" for i in range(n)], "image0": _image_column(n, seed),
            "image1": _image_column(n, seed + 100), "label": labels or [0] * n, "info": [""] * n}


def _pairs_2025(categories: list[str], seed: int) -> dict[str, list]:
    n = len(categories)
    return {"caption": [f"c25 {seed}-{i}" for i in range(n)], "image0": _image_column(n, seed),
            "image1": _image_column(n, seed + 100), "label": [0] * n, "category": categories,
            "subcategory": [f"sub{i % 2}" for i in range(n)],
            "model": ["flux", "gpt-image-1"] * (n // 2) + ["flux"] * (n % 2)}


#: items per shipped task, by construction of the mirror below
EXPECTED = {
    "mjbench2024-alignment": 3, "mjbench2024-safety": 2, "mjbench2024-quality": 4, "mjbench2024-bias": 4,
    "mjbench2025-alignment": 1, "mjbench2025-safety": 1, "mjbench2025-quality": 2, "mjbench2025-bias": 4,
    "mjbench2025-composition": 3, "mjbench2025-visualization": 2,
}


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    """DIR/MJ-Bench/MJ-Bench/ as `hf download MJ-Bench/MJ-Bench --repo-type dataset --local-dir` writes it."""
    root = tmp_path / "mirror"
    repo = root / REPO
    data = repo / "data"
    _write(data / "alignment.parquet", _pairs_2024(3, 1, labels=[0, 1, 0]))
    _write(data / "safety.parquet", _pairs_2024(2, 2))
    _write(data / "quality.parquet", _pairs_2024(4, 3))
    bias = _pairs_2024(4, 4)
    bias["image1"] = bias["image0"]
    bias["caption"] = ["A nurse.", "A nurse.", "A pilot.", "A pilot."]
    bias["info"] = ["young_female_black", "old_male_white", "adult_female_christian", "young_male_asian"]
    _write(data / "bias.parquet", bias)
    # 2025 layout, under names no task knows, category spelled two ways
    _write(data / "mjbench2025-part-a.parquet",
           _pairs_2025(["composition", "composition", "quality", "composition", "quality"], 5))
    _write(data / "v2" / "visual.parquet", _pairs_2025(["Visualization", "Alignment", "Visualization", "Safety"], 6))
    (repo / "README.md").write_text("---\nlicense: apache-2.0\n---\n# MJ-Bench\n")
    (repo / ".gitattributes").write_text("*.parquet filter=lfs\n")
    meta = repo / ".cache" / "huggingface" / "download" / "data"
    meta.mkdir(parents=True)
    (meta / "alignment.parquet.metadata").write_text(f"{REV}\netag\n1700000000.0\n")
    return root


def _hub_tasks() -> dict[str, TaskConfig]:
    catalog = Catalog()
    return {name: cfg for name, cfg in catalog.tasks.items()
            if isinstance(cfg, TaskConfig) and cfg.source.get("repo") == REPO}


def test_every_shipped_mjbench_task_loads_from_the_mirror(mirror: Path) -> None:
    tasks = _hub_tasks()
    assert set(tasks) == set(EXPECTED)  # a new shipped task needs its count here
    for name, cfg in tasks.items():
        assert cfg.source.get("data_files"), f"{name} must name its data files (the repository has no configs)"
        assert "split" not in cfg.source, f"{name}: the real repository has no per-perspective split"
        result = load_task(cfg, hub_mirror=mirror)
        assert len(result.items) == EXPECTED[name], (name, result.problems)
        assert result.problems == [] and result.dropped == {}
        first = result.items[0]
        assert first.images[0].load().size == (4, 4)  # image bytes read on demand from the mirror's file
    align = load_task(tasks["mjbench2024-alignment"], hub_mirror=mirror).items
    assert [it.label for it in align] == ["0", "1", "0"] and align[0].prompt == "caption 1-0"
    comp = load_task(tasks["mjbench2025-composition"], hub_mirror=mirror).items
    assert [it.subcategory for it in comp] == ["sub0", "sub1", "sub1"]
    assert [it.meta["model"] for it in comp] == ["flux", "gpt-image-1", "gpt-image-1"]
    assert all(it.meta["category"] == "composition" for it in comp)
    bias = load_task(tasks["mjbench2025-bias"], hub_mirror=mirror).items
    assert all(isinstance(it, BiasItem) for it in bias) and bias[2].axes == ["age", "gender", "religion"]
    for name in ("mjbench2024-alignment", "mjbench2024-safety", "mjbench2024-quality", "mjbench2024-bias",
                 "mjbench2025-bias"):
        assert tasks[name].source["revision"] == REV, f"{name}: pin the revision"


def test_the_environment_variable_names_the_mirror(mirror: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MJBENCH_HUB_MIRROR", str(mirror))
    assert len(load_task(_hub_tasks()["mjbench2024-quality"]).items) == 4


def _task(tmp_path: Path, name: str, **source) -> TaskConfig:
    import yaml

    path = tmp_path / f"{name}.yaml"
    data = {"name": name, "perspective": "quality", "source": {"type": "hub", "repo": REPO, **source}}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_task_file(path)


def test_a_wrong_file_name_lists_the_data_files_there(tmp_path: Path, mirror: Path) -> None:
    cfg = _task(tmp_path, "typo", revision=REV, data_files="data/qualty.parquet")
    with pytest.raises(DataError) as err:
        load_task(cfg, hub_mirror=mirror)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{tmp_path / 'typo.yaml'}: source.data_files: 'data/qualty.parquet' matches no file of "
                          f"{REPO} in the hub mirror")
    assert msg.endswith("data files there: data/alignment.parquet, data/bias.parquet, "
                        "data/mjbench2025-part-a.parquet, data/quality.parquet, data/safety.parquet, "
                        "data/v2/visual.parquet")  # README.md, .gitattributes and .cache/ are not data files
    # a repository the mirror lacks: say how to fill it
    cfg = _task(tmp_path, "other", data_files="x.parquet", repo="someone/else")
    with pytest.raises(DataError, match=r"hub mirror .* has no folder someone/else/ \(fill it with `hf download "
                                        r"someone/else --repo-type dataset --local-dir .*someone/else`\)"):
        load_task(cfg, hub_mirror=mirror)


def test_a_category_spelled_otherwise_names_the_values_there(tmp_path: Path, mirror: Path) -> None:
    cfg = _task(tmp_path, "cat", data_files="data/*.parquet", require_columns=["category"],
                filter={"category": "Composition"})
    with pytest.raises(DataError, match=r"source\.filter: no row of .* has category='Composition'; values there: "
                                        r"category: Alignment, Safety, Visualization, composition, quality$"):
        load_task(cfg, hub_mirror=mirror)
    cfg = _task(tmp_path, "cols", data_files="data/[abq]*.parquet", require_columns=["category"])
    with pytest.raises(DataError, match=r"require_columns: no data file of .* has columns category; files and their "
                                        r"columns: data/alignment.parquet: caption, image0, image1, label, info; "):
        load_task(cfg, hub_mirror=mirror)
    with pytest.raises(ConfigError, match="require_columns selects among data_files"):
        make_source(_task(tmp_path, "nofiles", require_columns=["category"]))


def test_a_mirror_downloaded_at_another_commit_is_flagged(tmp_path: Path, mirror: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    other = "0" * 40
    with caplog.at_level(logging.WARNING, logger="mjbench"):
        load_task(_task(tmp_path, "pinned", revision=REV, data_files="data/alignment.parquet"), hub_mirror=mirror)
        assert not caplog.records
        load_task(_task(tmp_path, "older", revision=other, data_files="data/alignment.parquet"), hub_mirror=mirror)
    assert f"data/alignment.parquet in the hub mirror was downloaded at commit {REV}, not the pinned revision {other}" \
        in caplog.text


def test_tasks_list_counts_hub_tasks_from_the_mirror(mirror: Path) -> None:
    res = CliRunner().invoke(app, ["tasks", "list", "--hub-mirror", str(mirror)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rows = {line.split("│")[1].strip(): line.split("│")[4].strip() for line in res.output.splitlines()
            if line.startswith("│") and line.split("│")[1].strip()}
    for name, n in EXPECTED.items():
        assert rows[name] == str(n), (name, rows.get(name))
    plain = CliRunner().invoke(app, ["tasks", "list"], catch_exceptions=False, env={"MJBENCH_HUB_MIRROR": ""})
    rows = {line.split("│")[1].strip(): line.split("│")[4].strip() for line in plain.output.splitlines()
            if line.startswith("│") and line.split("│")[1].strip()}
    assert rows["mjbench2024-alignment"] == ""  # without a mirror no count is worth a hub call


def test_mjbench_run_reads_the_mirror(tmp_path: Path, mirror: Path) -> None:
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["run", "--tasks", "mjbench2024-alignment,mjbench2025-composition", "--judges",
                                   "random", "--out", str(out), "-q", "--hub-mirror", str(mirror)],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    import json

    info = json.loads((out / "run.json").read_text())
    assert info["task_counts"]["mjbench2024-alignment"]["loaded"] == 3
    assert info["task_counts"]["mjbench2025-composition"]["loaded"] == 3
    assert info["hub_mirror"] == str(mirror)


def test_the_hub_is_listed_and_only_wanted_files_are_downloaded(tmp_path: Path, mirror: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a mirror: the listing comes from HfApi.list_repo_files, 2025 files are told by their footer read
    through HfFileSystem, and only the selected files are downloaded (never the 2024 quality file)."""
    hub = pytest.importorskip("huggingface_hub")
    monkeypatch.delenv("MJBENCH_HUB_MIRROR", raising=False)
    root = mirror / REPO
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                   if p.is_file() and ".cache" not in p.parts)
    calls: dict[str, list] = {"list": [], "download": [], "open": []}

    def list_repo_files(self, repo_id, *, revision=None, repo_type=None, token=None):
        calls["list"].append((repo_id, revision, repo_type))
        return files

    def hf_hub_download(repo_id, filename, *, repo_type=None, revision=None, cache_dir=None, **kw):
        calls["download"].append(filename)
        return str(root / filename)

    class FakeFS:
        def open(self, path, mode="rb"):
            calls["open"].append(path)
            return (root / path.split("/", 3)[3]).open(mode)

    monkeypatch.setattr(hub.HfApi, "list_repo_files", list_repo_files)
    monkeypatch.setattr(hub, "hf_hub_download", hf_hub_download)
    monkeypatch.setattr(hub, "HfFileSystem", FakeFS)
    tasks = _hub_tasks()
    items = load_task(tasks["mjbench2024-safety"]).items
    assert len(items) == 2 and calls["list"] == [(REPO, REV, "dataset")]
    assert calls["download"] == ["data/safety.parquet"]
    calls["download"].clear()
    assert len(load_task(tasks["mjbench2025-visualization"]).items) == 2
    # both 2025-layout files (the filter picks rows after download); the 2024 ones: footers read, never downloaded
    assert sorted(calls["download"]) == ["data/mjbench2025-part-a.parquet", "data/v2/visual.parquet"]
    assert "datasets/MJ-Bench/MJ-Bench@main/data/quality.parquet" in calls["open"]
    with pytest.raises(DataError, match=r"'data/nope.parquet' matches no file of MJ-Bench/MJ-Bench at revision "
                                        r"4b9667374c71463f63ae663ddd88373d3ffc5ba9; data files there: "):
        load_task(_task(tmp_path, "nope", revision=REV, data_files="data/nope.parquet"))

    def offline(self, *a, **k):
        raise hub.errors.OfflineModeIsEnabled("Cannot reach the hub: offline mode is enabled.")

    monkeypatch.setattr(hub.HfApi, "list_repo_files", offline)
    with pytest.raises(DataError, match=r"cannot list the files of MJ-Bench/MJ-Bench at revision .*: Cannot reach the "
                                        r"hub: offline mode is enabled\. \(no hub access here: read a local snapshot "
                                        r"with --hub-mirror DIR or MJBENCH_HUB_MIRROR\)"):
        load_task(tasks["mjbench2024-safety"])
