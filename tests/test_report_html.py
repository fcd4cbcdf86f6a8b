"""The HTML reports: self-contained pages, the plots that apply (and only those), the failure gallery with
its cap and thumbnails, hostile strings shown as text (HTML, SVG, Markdown, LaTeX), run facts, paired
comparisons, deterministic bytes, and `rebuild_reports` giving the pages the run wrote."""

from __future__ import annotations

import base64
import io
import json
import math
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from mjbench.errors import ItemError
from mjbench.images import ImageRef
from mjbench.metrics import MetricsResult, compute_metrics
from mjbench.records import records_frame
from mjbench.report import REPORT_OUTPUTS, rebuild_reports, write_run_outputs
from mjbench.report.gallery import THUMB_SIDE
from mjbench.report.leaderboard import build_leaderboard, leaderboard_tex, tex_escape
from mjbench.report.plots import threshold_curves

EVIL = "<script>alert(1)</script>"
EVIL_ATTR = '"><img src=x onerror=alert(2)>'
EVIL_JUDGE = "j<script>alert(3)</script>"


def rec(judge: str, item_id: str, label: str | None, pred: str | None = None, **kw) -> dict:
    return {"judge": judge, "task": "t-align", "perspective": "alignment", "subcategory": "object",
            "scale": "score", "item_id": item_id, "label": label, "score_0": None, "score_1": None, "pred": pred,
            "status": "ok", "prompt": f"prompt {item_id}", **kw}


def hostile_records(n_wrong: int = 30) -> list[dict]:
    """Every plot's data: score judges (tie threshold), a pair-mode judge at two scales (orders, scale
    study), bias scores (heat map, axes), soft labels (calibration); hostile names, captions and outputs."""
    rows = []
    for i in range(n_wrong + 6):  # the score judge gets the first n_wrong wrong
        s0, s1 = (0.2, 0.8) if i < n_wrong else (0.9, 0.1)
        rows.append(rec("clip", f"a{i:02d}", "0", score_0=s0, score_1=s1, label_prob=0.1 + 0.8 * (i % 5) / 4,
                        prompt=f"{EVIL} {EVIL_ATTR} {i}" if i == 0 else f"prompt {i}"))
        rows.append(rec(EVIL_JUDGE, f"a{i:02d}", "0", score_0=float(i % 3), score_1=1.0, label_prob=0.5,
                        subcategory=EVIL_ATTR if i % 2 else "object"))
    for scale in ("1-5", "1-10"):
        for i in range(8):
            for order in ("01", "10"):
                pred = "0" if (i < 5 or order == "01") else "1"
                status = "parse_error" if i == 7 else "ok"
                rows.append(rec("vlm", f"s{i}", "0", None if status != "ok" else pred, perspective="safety",
                                task="t-safety", subcategory="nsfw", scale=scale, order=order, status=status,
                                raw_output=f"I think {EVIL} {EVIL_ATTR} order {order}"))
    for judge in ("clip", EVIL_JUDGE):
        for i in range(8):
            rows.append(rec(judge, f"b{i}", None, perspective="bias", task="t-bias", subcategory="occupation",
                            score_0=None if i == 7 else float(i % 4), group=("doctor", EVIL)[i % 2],
                            axes=["age", "gender"], status="error" if i == 7 else "ok"))
    return rows


def clip_rows(n_wrong: int) -> list[dict]:
    """Only the score judge's alignment records: a cheap run for the gallery tests."""
    return [r for r in hostile_records(n_wrong) if r["judge"] == "clip" and r["perspective"] == "alignment"]


def png(color: tuple[int, int, int], size: tuple[int, int] = (300, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def image_lookup(task: str, item_id: str) -> tuple[ImageRef, ...] | None:
    if item_id == "a01":
        return (ImageRef(data=b"not an image", origin="broken.png"), ImageRef(data=png((0, 0, 255))))
    if item_id.startswith("zz"):
        return None
    if task == "t-bias":
        return (ImageRef(data=png((200, 100, 0))),)
    return (ImageRef(data=png((255, 0, 0))), ImageRef(data=png((0, 128, 0))))


RUN_INFO = {"command": "run", "date": "2025-01-02T03:04:05Z", "seed": 0, "git_revision": "abc123",
            "wall_time_s": 12.5, "versions": {"mjbench": "0.1.0"}, "counts": {"items": 66, "records": 200},
            "task_counts": {"t-align": {"loaded": 37, "dropped": 1, "why": {"bad label": 1}}},
            "judge_failures": {"dead": f"no key {EVIL}"}}


def write(out: Path, rows: list[dict], run_info: dict | None = None, metrics: MetricsResult | None = None,
          **kw) -> Path:
    frame = records_frame(rows)
    if "label_prob" not in frame.columns and any("label_prob" in r for r in rows):
        frame["label_prob"] = [r.get("label_prob") for r in rows]
    res = metrics if metrics is not None else compute_metrics(frame)
    write_run_outputs(out, frame, res, RUN_INFO if run_info is None else run_info, **kw)
    return out


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory) -> Path:
    return write(tmp_path_factory.mktemp("hostile") / "run", hostile_records(), images=image_lookup)


def pages(out: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted((out / "reports").glob("*.html"))}


def figures(html: str) -> dict[str, str]:
    """plot name -> its inline SVG."""
    return dict(re.findall(r'<figure class="plot" id="plot-([^"]+)"[^>]*>.*?(<svg.*?</svg>)', html, re.S))


EXTERNAL = re.compile(r"""(?:src|href|action|poster)\s*=\s*["']?\s*(?!data:image/)(?:[a-z][a-z0-9+.-]*:|//)""", re.I)


def test_every_page_is_self_contained(hostile_run):
    found = pages(hostile_run)
    assert set(found) == {"index.html", "alignment.html", "safety.html", "bias.html"}
    for name, html in found.items():
        assert html.startswith("<!DOCTYPE html>"), name
        for m in EXTERNAL.finditer(html):  # the only scheme in an attribute: data URIs of rasters in plots
            pytest.fail(f"{name}: external reference {html[m.start():m.end() + 40]!r}")
        assert "<link" not in html and "@import" not in html and "@font-face" not in html, name
        assert not re.search(r"url\(\s*['\"]?(?!data:image/jpeg;base64,|#)", html), name
        assert "<script" not in html.lower() and "<img" not in html.lower() and "<iframe" not in html, name
        for href in re.findall(r'href="([^"]*)"', html):  # other pages, anchors, plot files, rasters in plots
            target = href.split("#")[0]
            assert href.startswith(("#", "data:image/png;base64,")) or (hostile_run / "reports" / target).is_file(), \
                (name, href)


def test_every_applicable_plot_is_present_and_saved(hostile_run):
    found = {name: figures(html) for name, html in pages(hostile_run).items()}
    assert set(found["index.html"]) == {"overview", "scale-study"}
    assert set(found["alignment.html"]) == {"alignment-subcategories", "alignment-tie-threshold",
                                            "alignment-calibration"}
    assert set(found["safety.html"]) == {"safety-subcategories", "safety-orders"}
    assert set(found["bias.html"]) == {"bias-groups", "bias-axes"}
    saved = {p.stem for p in (hostile_run / "reports" / "plots").glob("*.svg")}
    assert saved == {n for f in found.values() for n in f}
    for page in found.values():
        for name, svg in page.items():
            assert len(svg) > 3000 and svg.count("<path") > 5, (name, len(svg), svg.count("<path"))
            assert (hostile_run / "reports" / "plots" / f"{name}.svg").read_text() == svg + "\n"
            assert "<metadata>" not in svg and "Matplotlib v" not in svg  # no version, no date: stable bytes


def test_plots_that_do_not_apply_are_left_out(tmp_path):
    rows = [rec("k", f"x{i}", "0", "0" if i % 3 else "1") for i in range(9)]  # predictions only, one scale
    found = {name: set(figures(html)) for name, html in pages(write(tmp_path / "run", rows)).items()}
    assert found == {"index.html": {"overview"}, "alignment.html": {"alignment-subcategories"}}


def test_svg_ids_are_unique_on_a_page(hostile_run):
    for name, html in pages(hostile_run).items():
        ids = re.findall(r'\bid="([^"]+)"', html)
        assert len(ids) == len(set(ids)), name
        for ref in re.findall(r'(?:url\(#|href="#)([^)"]+)', html):
            assert ref in ids, (name, ref)


def test_hostile_strings_are_text_everywhere(hostile_run):
    for name, html in pages(hostile_run).items():
        assert EVIL not in html and EVIL_ATTR not in html and "<img" not in html, name
    index = pages(hostile_run)["index.html"]
    assert "j&lt;script&gt;alert(3)&lt;/script&gt;" in index  # the judge name, in the leaderboard
    assert "j&lt;script&gt;alert(3)&lt;/script&gt;" in figures(index)["overview"]  # and in the plot legend
    alignment = pages(hostile_run)["alignment.html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &#34;&gt;&lt;img src=x onerror=alert(2)&gt; 0" in alignment
    safety = pages(hostile_run)["safety.html"]
    assert "I think &lt;script&gt;alert(1)&lt;/script&gt;" in safety and "<details><summary>raw output" in safety
    for md in (hostile_run / "reports").glob("*.md"):
        text = md.read_text()
        assert "<script" not in text and "<img" not in text, md.name
    assert "<script" not in (hostile_run / "leaderboard.md").read_text()
    tex = (hostile_run / "leaderboard.tex").read_text()
    assert r"j\textless{}script\textgreater{}alert(3)\textless{}/script\textgreater{}" in tex
    assert "<script" not in tex


def test_tex_escape_and_leaderboard_shape():
    assert tex_escape(r"a_b&c%d$e#f{g}h~i^j\k<l>m|n") == (
        r"a\_b\&c\%d\$e\#f\{g\}h\textasciitilde{}i\textasciicircum{}j\textbackslash{}k\textless{}l"
        r"\textgreater{}m\textbar{}n")
    rows = [rec("best_judge", f"x{i}", "0", "0") for i in range(4)]
    rows += [rec("weak", f"x{i}", "0", "0" if i < 2 else "1") for i in range(4)]
    rows += [rec(j, f"b{i}", None, perspective="bias", subcategory="o", score_0=float(i), group="g")
             for j in ("best_judge", "weak") for i in range(3)]
    tex = leaderboard_tex(build_leaderboard(compute_metrics(records_frame(rows))))
    assert r"\multicolumn{2}{c}{Alignment} & \multicolumn{3}{c}{Bias}" in tex
    assert "Judge & Scale & w/ tie & w/o tie & ACC & NDS & GES" in tex
    assert r"best\_judge & score & \textbf{100.0} & \textbf{100.0} &" in tex
    assert "weak & score & 50.0 & 50.0 &" in tex
    assert tex.count(r"\begin{tabular}") == 1 and tex.endswith("\\end{table}\n")


def test_gallery_is_capped_and_says_so(tmp_path):
    out = write(tmp_path / "run", clip_rows(30), images=image_lookup, gallery_max=5)
    alignment = pages(out)["alignment.html"]
    section = alignment.split("<h3>clip (score): 30 items</h3>")[1]
    assert "<h4>object: showing 5 of 30</h4>" in section
    assert section.count('<div class="card">') == 5
    assert "At most 5 items per judge, scale and subcategory" in alignment
    none = pages(write(tmp_path / "zero", clip_rows(30), images=image_lookup, gallery_max=0))
    assert "<h4>object: showing 0 of 30</h4>" in none["alignment.html"]
    assert '<div class="card">' not in none["alignment.html"]


def test_gallery_shows_wrong_and_invalid_items_with_both_orders(hostile_run):
    safety = pages(hostile_run)["safety.html"]
    # vlm: s5, s6 disagree between orders (combined tie: wrong), s7 parse errors (invalid); s0-s4 right
    section = safety.split("<h3>vlm (1-10): 3 items</h3>")[1].split("</section>")[0]
    assert "t-safety / s5" in section and "t-safety / s6" in section and "t-safety / s7" in section
    assert "t-safety / s4" not in section
    assert 'verdict <span class="wrong">tie</span>' in section and 'verdict <span class="wrong">invalid</span>' in section
    assert "<tr><td>01</td><td>0</td>" in section and "<tr><td>10</td><td>1</td>" in section
    bias = pages(hostile_run)["bias.html"]
    assert "<h4>occupation: showing 1 of 1</h4>" in bias  # the one record without a score, per judge


def test_thumbnails_are_small_jpegs_and_unreadable_images_say_so(hostile_run):
    alignment = pages(hostile_run)["alignment.html"]
    uris = re.findall(r"url\(data:image/jpeg;base64,([A-Za-z0-9+/=]+)\)", alignment)
    assert uris and len(uris) == len(set(uris))  # each distinct image embedded once per page
    for b64 in uris:
        data = base64.b64decode(b64)
        assert len(data) < 5000
        with Image.open(io.BytesIO(data)) as im:
            assert im.format == "JPEG" and max(im.size) <= THUMB_SIDE
    assert 'title="cannot decode image broken.png: not a recognised image format">image unavailable' in alignment


def test_gallery_without_images_says_unavailable(tmp_path):
    out = write(tmp_path / "run", clip_rows(3))
    alignment = pages(out)["alignment.html"]
    assert 'title="no images given to the report">image unavailable' in alignment
    assert "url(data:" not in alignment


def test_run_facts_on_the_overview(hostile_run):
    index = pages(hostile_run)["index.html"]
    facts = index.split('<div id="run">')[1]
    for text in ("<td>date</td><td>2025-01-02T03:04:05Z</td>", "<td>git revision</td><td>abc123</td>",
                 "<td>seed</td><td>0</td>", "<td>wall time</td><td>12.5 s</td>",
                 "<td>versions</td><td>mjbench 0.1.0</td>", "<td>items</td><td>66</td>",
                 "<td>rows dropped while loading</td><td>1 ", "<td>cost</td><td>none recorded</td>"):
        assert text in facts, text
    assert "<td>dead</td><td>could not run</td><td>no key &lt;script&gt;" in index


def test_cost_is_the_sum_of_the_records(tmp_path):
    rows = [rec("api", f"x{i}", "0", "0", cost_usd=0.25) for i in range(3)] + [rec("api", "y", "0", "1")]
    index = pages(write(tmp_path / "run", rows))["index.html"]
    assert "<td>cost</td><td>0.7500 USD (sum of cost_usd)</td>" in index


def test_comparisons_are_written_and_shown(hostile_run):
    comparisons = pd.read_csv(hostile_run / "comparisons.csv")
    assert list(comparisons.columns) == ["judge_a", "judge_b", "task", "perspective", "subcategory", "scale",
                                         "diff", "ci_low", "ci_high", "p_value", "p_adjusted", "n"]
    alignment = pages(hostile_run)["alignment.html"]
    assert "<h3>Which judge is better: paired comparisons</h3>" in alignment
    index = pages(hostile_run)["index.html"]
    assert "<h2>Best judges</h2>" in index
    assert re.search(r"<tr><td>alignment</td><td>score</td><td>[^<]+</td><td>[^<]+</td></tr>", index)


def test_without_comparisons_nothing_is_invented(tmp_path):
    rows = [rec("k", f"x{i}", "0", "0") for i in range(4)] + [rec("m", f"x{i}", "0", "1") for i in range(4)]
    frame = records_frame(rows)
    full = compute_metrics(frame)
    bare = MetricsResult(metrics=full.metrics, warnings=full.warnings, bias_groups=full.bias_groups)
    bare.comparisons = None
    out = write(tmp_path / "run", rows, metrics=bare)
    assert not (out / "comparisons.csv").exists()
    assert "Best judges" not in pages(out)["index.html"]
    assert "paired comparisons" not in pages(out)["alignment.html"]


def test_threshold_curves_recompute_verdicts_from_scores():
    rows = pd.DataFrame({"label": ["0", "1", "0", "0"], "status": ["ok", "ok", "ok", "error"],
                         "_s0": [1.0, 0.5, 0.2, 0.9], "_s1": [0.0, 0.4, 0.2, 0.1]})
    curves = {round(t, 6): (a, b, c) for t, a, b, c in threshold_curves(rows, quantiles=2)}
    assert sorted(curves) == [0.0, 0.1, 1.0]  # 0 and the quantiles of the valid gaps 0, 0.1, 1
    assert curves[0.0][:2] == (1 / 4, 1 / 2) and curves[0.0][2] == 1 / 4  # the error counts as wrong
    assert curves[0.1] == (1 / 4, 1.0, 2 / 4)  # 0.5 - 0.4 is a tie at 0.1 (float rounding)
    assert curves[1.0][0] == 0.0 and math.isnan(curves[1.0][1]) and curves[1.0][2] == 3 / 4


def test_same_inputs_give_the_same_bytes(tmp_path):
    rows = hostile_records()
    shuffled = [rows[i] for i in pd.Series(range(len(rows))).sample(frac=1.0, random_state=5)]
    a = write(tmp_path / "a", rows, images=image_lookup)
    b = write(tmp_path / "b", shuffled, images=image_lookup)
    files = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_run_info_is_shown_as_run_json_holds_it(tmp_path):
    """A value run.json writes as text (a path) renders the same before and after the JSON round trip."""
    rows = [rec("k", f"x{i}", "0", "0") for i in range(3)]
    a = write(tmp_path / "a", rows, {"command": "run", "records": Path("records.jsonl"), "seed": 1})
    b = write(tmp_path / "b", rows, json.loads(json.dumps({"command": "run", "records": "records.jsonl", "seed": 1})))
    assert (a / "reports" / "index.html").read_bytes() == (b / "reports" / "index.html").read_bytes()


def test_report_outputs_cover_what_is_written(hostile_run):
    top = {p.name for p in hostile_run.iterdir()}
    assert top <= set(REPORT_OUTPUTS) and top == set(REPORT_OUTPUTS)


def test_rebuild_reports_equals_the_run(tmp_path):
    from mjbench.runner import RunSpec, run_benchmark

    out = tmp_path / "run"
    run_benchmark(RunSpec(tasks=["synthetic-quality", "synthetic-bias"], judges=["random", "sharpness"], limit=8,
                          out=out, quiet=True))
    before = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*")
              if p.is_file() and p.relative_to(out).parts[0] in REPORT_OUTPUTS}
    assert "reports/quality.html" in before and "leaderboard.tex" in before
    assert "url(data:image/jpeg" in before["reports/quality.html"].decode()  # the run gave the gallery images
    shutil.rmtree(out / "reports")
    (out / "leaderboard.tex").unlink()
    written = rebuild_reports(out)
    after = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*")
             if p.is_file() and p.relative_to(out).parts[0] in REPORT_OUTPUTS}
    assert sorted(after) == sorted(before)
    assert sorted(p.relative_to(out).as_posix() for p in written) == sorted(before)
    for rel, data in before.items():
        assert after[rel] == data, rel


def test_rebuild_reports_needs_a_run_directory(tmp_path):
    from mjbench.errors import DataError

    with pytest.raises(DataError, match="run.json: not found"):
        rebuild_reports(tmp_path)


def test_unreadable_image_is_an_item_error():
    """The gallery relies on ImageRef.load raising ItemError (never anything else) for a bad image."""
    with pytest.raises(ItemError):
        ImageRef(data=b"junk", origin="x").load(max_side=THUMB_SIDE)
