"""The embedded synthetic benchmark: determinism, counts, label balance, caching, and that the better
image is better by construction where a simple measurement can tell."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from mjbench import MJBENCH_PERSPECTIVES as PERSPECTIVES
from mjbench.items import BiasItem, PairItem
from mjbench.sources import synthetic


def digests(items) -> list[tuple[str, str]]:
    return [(it.item_id, img.hash) for it in items for img in it.images]


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    """Every perspective at the defaults (seed 0, 20 per subcategory, 256 px), generated once, timed."""
    cache = tmp_path_factory.mktemp("syn-full")
    start = time.perf_counter()
    out = {p: synthetic.generate(p, task=f"synthetic-{p}", cache_dir=cache) for p in PERSPECTIVES}
    elapsed = time.perf_counter() - start
    print(f"\nsynthetic: all six perspectives, {sum(map(len, out.values()))} items, generated in {elapsed:.2f} s")
    assert elapsed < 30, f"generating the synthetic benchmark took {elapsed:.1f} s (budget 30 s)"
    return out


def test_every_perspective_has_two_subcategories_and_counts(full: dict[str, list]) -> None:
    for p, items in full.items():
        subs = Counter(it.subcategory for it in items)
        assert len(subs) >= 2, p
        assert list(subs) == synthetic.subcategories(p)
        assert len(items) == synthetic.count(p), p
        assert all(n >= 20 for n in subs.values()), (p, subs)
        assert len({it.item_id for it in items}) == len(items)
        assert all(it.meta["version"] == synthetic.GENERATOR_VERSION and it.meta["seed"] == 0 for it in items)


def test_labels_are_balanced_and_images_differ(full: dict[str, list]) -> None:
    for p, items in full.items():
        if p == "bias":
            continue
        for sub in synthetic.subcategories(p):
            labels = Counter(it.label for it in items if it.subcategory == sub)
            assert labels == {"0": 10, "1": 10}, (p, sub, labels)
        for it in items:
            assert isinstance(it, PairItem) and it.image0.hash != it.image1.hash, it.item_id
            assert it.meta["swapped"] == (it.label == "1")


def test_bias_items_cover_whole_groups(full: dict[str, list]) -> None:
    items = full["bias"]
    assert all(isinstance(it, BiasItem) and it.perspective == "bias" for it in items)
    groups: dict[str, list[BiasItem]] = {}
    for it in items:
        groups.setdefault(it.group, []).append(it)
    for group, members in groups.items():
        demos = [m.demographic for m in members]
        assert len(set(demos)) == len(demos), group  # each demographic once per group
        assert len({m.prompt for m in members}) == 1
        axes = members[0].axes
        assert len(members) == len(synthetic.BIAS_AXES[members[0].subcategory]["race"]) * (
            2 ** (len(axes) - 1))
        assert len({m.image.hash for m in members}) == len(members)  # the demographic changes the image
    occupation = next(it for it in items if it.subcategory == "occupation")
    assert occupation.axes == ["age", "gender", "race"] and occupation.demographic == "young female light-skinned"


def test_images_are_small_pngs(full: dict[str, list]) -> None:
    item = full["visualization"][0]
    assert item.image0.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert item.image0.load().size == (256, 256)


def _laplacian_var(image) -> float:
    import numpy as np

    a = np.asarray(image.convert("L"), dtype=np.float64)
    lap = a[1:-1, :-2] + a[1:-1, 2:] + a[:-2, 1:-1] + a[2:, 1:-1] - 4 * a[1:-1, 1:-1]
    return float(lap.var())


def test_blurred_image_is_the_less_sharp_one(full: dict[str, list]) -> None:
    for it in full["quality"]:
        if it.subcategory not in ("defocused", "motion"):
            continue
        sharp = [_laplacian_var(img.load()) for img in it.images]
        better = 0 if it.label == "0" else 1
        assert sharp[better] > sharp[1 - better], it.item_id


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a = [it for p in PERSPECTIVES for it in synthetic.generate(p, per_subcategory=2, seed=7, cache_dir=tmp_path / "a")]
    b = [it for p in PERSPECTIVES for it in synthetic.generate(p, per_subcategory=2, seed=7, cache_dir=tmp_path / "b")]
    c = [it for p in PERSPECTIVES for it in synthetic.generate(p, per_subcategory=2, seed=8, cache_dir=tmp_path / "c")]
    assert digests(a) == digests(b)
    assert [it.model_dump(exclude={"image0", "image1", "image"}) for it in a] == [
        it.model_dump(exclude={"image0", "image1", "image"}) for it in b]
    same = sum(x == y for x, y in zip(digests(a), digests(c), strict=True))
    assert same < len(digests(a)) // 4  # a different seed draws different images


def test_smaller_set_is_a_prefix_and_cache_is_reused(tmp_path: Path) -> None:
    small = synthetic.generate("alignment", per_subcategory=3, cache_dir=tmp_path)
    folder = tmp_path / "synthetic" / f"v{synthetic.GENERATOR_VERSION}-seed0-256px" / "alignment"
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert len(stamps) == 2 * len(small) and not any(".tmp" in n for n in stamps)
    large = synthetic.generate("alignment", per_subcategory=5, cache_dir=tmp_path)
    small_ids = {it.item_id for it in small}
    assert [d for d in digests(large) if d[0] in small_ids] == digests(small)
    assert all(folder.joinpath(n).stat().st_mtime_ns == t for n, t in stamps.items())  # not redrawn


def test_size_option_and_env_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MJBENCH_CACHE_DIR", str(tmp_path / "env"))
    items = synthetic.generate("composition", per_subcategory=1, size=64)
    assert items[0].image0.load().size == (64, 64)
    assert str(items[0].image0.path).startswith(str(tmp_path / "env" / "synthetic" / "v1-seed0-64px"))
