"""The shipped task YAMLs: the synthetic suite and the MJ-Bench tasks are found and valid; bad task files
(malformed YAML, unknown perspective, bad source options) give one line naming the file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from mjbench import MJBENCH_PERSPECTIVES as PERSPECTIVES
from mjbench.catalog import Catalog
from mjbench.config import SuiteConfig, TaskConfig
from mjbench.errors import ConfigError, UnknownNameError
from mjbench.sources import load_task, make_source


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog()


def test_no_shipped_task_file_is_broken(catalog: Catalog) -> None:
    assert catalog.problems == []


def test_synthetic_suite_covers_all_six_perspectives(catalog: Catalog) -> None:
    suite = catalog.task("synthetic")
    assert isinstance(suite, SuiteConfig)
    tasks = catalog.expand_tasks(["synthetic"])
    assert [t.name for t in tasks] == [f"synthetic-{p}" for p in PERSPECTIVES]
    assert {t.perspective for t in tasks} == set(PERSPECTIVES)
    for t in tasks:
        source = make_source(t)
        assert source.count() == len(load_task(t).items), t.name
        assert set(t.subcategories) == {it.subcategory for it in load_task(t, limit=40).items}


def test_mjbench_tasks_and_suites(catalog: Catalog) -> None:
    assert [t.name for t in catalog.expand_tasks(["mjbench2024"])] == [
        f"mjbench2024-{p}" for p in ("alignment", "safety", "quality", "bias")]
    assert {t.perspective for t in catalog.expand_tasks(["mjbench2025"])} == set(PERSPECTIVES)
    for name, cfg in catalog.tasks.items():
        if name.startswith("mjbench20") and isinstance(cfg, TaskConfig):
            assert cfg.source["type"] == "hub" and cfg.source["repo"] == "MJ-Bench/MJ-Bench"
            assert (cfg.kind == "bias") == (cfg.perspective == "bias")
            make_source(cfg)  # options validate without touching the network


def test_limit_through_a_shipped_task(catalog: Catalog) -> None:
    cfg = catalog.task("synthetic-quality")
    assert isinstance(cfg, TaskConfig)
    items = load_task(cfg, limit=6, seed=3).items
    assert len(items) == 6 and {it.subcategory for it in items} == {"defocused", "motion", "distortion"}
    assert all(it.task == "synthetic-quality" for it in items)
    bias = load_task(catalog.task("synthetic-bias"), limit=8).items  # type: ignore[arg-type]
    assert len(bias) == 8 and max(sum(b.group == g for b in bias) for g in {b.group for b in bias}) >= 2


def _include(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / "tasks").mkdir(exist_ok=True)
    (tmp_path / "tasks" / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_malformed_yaml_is_one_line_naming_the_file(tmp_path: Path) -> None:
    cat = Catalog(include_paths=[_include(tmp_path, "broken.yaml", "name: broken\nsource: {type: table\n")])
    assert len(cat.problems) == 1
    msg = str(cat.problems[0])
    assert "broken.yaml" in msg and "line" in msg and "malformed YAML" in msg and "\n" not in msg


def test_unknown_perspective_names_file_and_field(tmp_path: Path) -> None:
    cat = Catalog(include_paths=[_include(tmp_path, "odd.yaml",
                                          "name: odd\nperspective: beauty\nsource: {type: synthetic}\n")])
    with pytest.raises(ConfigError, match=r"odd\.yaml: perspective: unknown perspective 'beauty'"):
        cat.task("odd")


def test_bad_synthetic_options(tmp_path: Path) -> None:
    text = "name: s\nperspective: quality\nsource: {type: synthetic, per_subcategory: 0}\n"
    cat = Catalog(include_paths=[_include(tmp_path, "s.yaml", text)])
    with pytest.raises(ConfigError, match=r"s\.yaml: source: per_subcategory: Input should be greater"):
        make_source(cat.task("s"))  # type: ignore[arg-type]
    text = "name: s2\nperspective: quality\nsource: {type: synthetic, subcategories: [defocussed]}\n"
    cat = Catalog(include_paths=[_include(tmp_path, "s2.yaml", text)])
    with pytest.raises(UnknownNameError, match=r"s2\.yaml: source\.subcategories: .*'defocussed'; did you mean 'defocused'"):
        make_source(cat.task("s2"))  # type: ignore[arg-type]
    text = "name: s3\nperspective: bias\nsource: {type: synthetic}\n"
    cat = Catalog(include_paths=[_include(tmp_path, "s3.yaml", text)])
    with pytest.raises(ConfigError, match=r"s3\.yaml: kind: synthetic bias items are 'bias' items"):
        make_source(cat.task("s3"))  # type: ignore[arg-type]
