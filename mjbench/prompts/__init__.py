"""Prompt templates for VLM judges: one per mode, filled in per perspective and feedback scale.

Packaged files (this folder): `single.j2` and `pair.j2` (Jinja2), `caption_single.j2` and `caption_pair.j2`
(one image, texts rated for it: captions, descriptions), `criteria/<perspective>.txt` (what to judge for
each perspective), `criteria/aspects/<aspect>.txt` (one aspect of quality, used instead of the
perspective's criteria when a run asks for aspects), and optionally `<perspective>.<mode>.j2` where a
perspective needs its own wording. A judge YAML overrides them under `prompts:`:

    prompts:
      single: "...{{ caption }}... RATING: {{ placeholder }}"   # every perspective, single mode
      pair: my_pair_prompt.j2                                  # a file, relative to the YAML
      safety.single: "..."                                     # one perspective and mode

Lookup order for (perspective, mode): YAML `<perspective>.<mode>`, YAML `<mode>`, packaged
`<perspective>.<mode>.j2`, packaged `<mode>.j2`. Variables a template can use: `caption`,
`perspective`, `criteria`, `scale` (its name), `scale_instructions` (the valid values, worst to best),
`placeholder` (what goes after `RATING:`), `range_text`, `levels` (Likert words, else empty), `low`,
`high`, `aspect` (or empty); for caption prompts `text` (single) or `text_a`, `text_b` (pair), with
`caption` the item's optional context; for pair prompts `labels` (the task's gold classes, default 0, 1, tie), `both_bad` (true where the
task declares that class: the judge may answer BOTH_BAD) and `choices` (`A | B | TIE`, plus `| BOTH_BAD`). The scale's words and range always come from `mjbench.scales`, so every template states the
range it will be parsed with. Templates must end by asking for the final lines that
`mjbench.parsing` reads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mjbench import PERSPECTIVES
from mjbench.config import JudgeConfig
from mjbench.errors import ConfigError
from mjbench.scales import get_scale

if TYPE_CHECKING:
    import jinja2

    from mjbench.images import ImageRef
    from mjbench.responses import PairRequest, ScoreRequest

PROMPT_DIR = Path(__file__).resolve().parent
MODES = ("single", "pair", "caption_single", "caption_pair")
TEMPLATE_SUFFIXES = (".j2", ".jinja", ".txt", ".md")


@cache
def _env() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)


@cache
def criteria(perspective: str, aspect: str | None = None) -> str:
    """What to judge: the packaged `criteria/aspects/<aspect>.txt` when an aspect is asked, else
    `criteria/<perspective>.txt`."""
    if aspect is not None:
        check_aspect(aspect)
        path = PROMPT_DIR / "criteria" / "aspects" / f"{aspect}.txt"
    else:
        path = PROMPT_DIR / "criteria" / f"{perspective}.txt"
    return " ".join(path.read_text(encoding="utf-8").split())  # files wrap lines for editing; prompts get one paragraph


def aspects() -> list[str]:
    """The aspects a VLM judge can be asked about one at a time (VisionPrefer's four by default)."""
    return sorted(p.stem for p in (PROMPT_DIR / "criteria" / "aspects").glob("*.txt"))


def check_aspect(aspect: str) -> str:
    if aspect not in aspects():
        raise ConfigError(f"unknown aspect {aspect!r}; known aspects: {', '.join(aspects())}")
    return aspect


@cache
def _packaged(name: str) -> jinja2.Template | None:
    path = PROMPT_DIR / f"{name}.j2"
    return _env().from_string(path.read_text(encoding="utf-8")) if path.is_file() else None


def verdict_choices(labels: Sequence[str] | None) -> dict[str, Any]:
    """The template variables that say which verdicts a pair prompt offers (see the module docstring)."""
    classes = list(labels or ("0", "1", "tie"))
    both_bad = "both_bad" in classes
    return {"labels": classes, "both_bad": both_bad, "choices": "A | B | TIE" + (" | BOTH_BAD" if both_bad else "")}


def valid_keys() -> list[str]:
    return [*MODES, *(f"{p}.{m}" for p in PERSPECTIVES for m in MODES)]


class PromptBook:
    """The prompts of one judge: YAML overrides checked and compiled once, packaged ones as fallback."""

    def __init__(self, config: JudgeConfig):
        self.where = str(config.path or f"judge {config.name}")
        for name in config.scales:
            if not get_scale(name).promptable:
                raise ConfigError(f"{self.where}: scales: {name!r} is a raw-score scale; a VLM judge needs a "
                                  "numeric or Likert scale")
        base = config.path.parent if config.path else Path.cwd()
        keys = valid_keys()
        self._overrides: dict[str, jinja2.Template] = {}
        self._sources: dict[str, str] = {}
        import jinja2

        for key, text in config.prompts.items():
            if key not in keys:
                raise ConfigError(
                    f"{self.where}: prompts.{key}: unknown key; use a mode ({', '.join(MODES)}) or "
                    f"'<perspective>.<mode>' (perspectives: {', '.join(PERSPECTIVES)})"
                )
            text = self._sources[key] = self._read(key, text, base)
            try:
                self._overrides[key] = _env().from_string(text)
            except jinja2.TemplateSyntaxError as exc:
                raise ConfigError(f"{self.where}: prompts.{key}: template line {exc.lineno}: {exc.message}") from None

    def _read(self, key: str, text: str, base: Path) -> str:
        """A value that names a template file (one line, known suffix) is read from disk."""
        if "\n" in text or not text.strip().endswith(TEMPLATE_SUFFIXES):
            return text
        path = Path(text.strip()).expanduser()
        path = path if path.is_absolute() else base / path
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{self.where}: prompts.{key}: cannot read {path} ({exc.strerror or exc})") from None

    def fingerprint(self) -> str:
        """A hash of every template text this judge can use (overrides and packaged files), for cache keys:
        editing a packaged prompt must not reuse answers to the old one."""
        h = hashlib.sha256()
        for key in sorted(self._sources):
            h.update(f"{key}\0{self._sources[key]}\0".encode())
        for path in sorted(PROMPT_DIR.rglob("*")):
            if path.suffix in TEMPLATE_SUFFIXES and path.is_file():
                h.update(f"{path.relative_to(PROMPT_DIR).as_posix()}\0".encode() + path.read_bytes())
        return h.hexdigest()[:16]

    def template(self, perspective: str, mode: str) -> jinja2.Template:
        for key in (f"{perspective}.{mode}", mode):
            if key in self._overrides:
                return self._overrides[key]
        found = _packaged(f"{perspective}.{mode}") or _packaged(mode)
        if found is None:
            raise ConfigError(f"{self.where}: no prompt template for mode {mode!r}")
        return found

    def render(self, *, caption: str, perspective: str, mode: str, scale: str,
               labels: Sequence[str] | None = None, aspect: str | None = None, text: str | None = None,
               texts: Sequence[str] | None = None) -> str:
        """The full text prompt; images are placed before it by the adapter. `labels`: the task's gold
        classes (TaskConfig.labels); with `both_bad` among them a pair prompt offers BOTH_BAD. `aspect`
        replaces the perspective's criteria; `text` / `texts` are the texts a caption prompt rates."""
        import jinja2

        sc = get_scale(scale)
        if not sc.promptable:
            raise ConfigError(f"{self.where}: scale {scale!r} is a raw-score scale; a VLM judge needs a "
                              "numeric or Likert scale")
        variables = {
            "caption": caption, "perspective": perspective, "criteria": criteria(perspective, aspect),
            "aspect": aspect or "", "text": text or "", "text_a": texts[0] if texts else "",
            "text_b": texts[1] if texts else "", "scale": sc.name,
            "scale_instructions": sc.instructions, "placeholder": sc.placeholder, "range_text": sc.range_text,
            "levels": list(sc.levels), "low": sc.low, "high": sc.high,
            **verdict_choices(labels),
        }
        try:
            return self.template(perspective, mode).render(**variables).strip()
        except jinja2.UndefinedError as exc:
            raise ConfigError(f"{self.where}: prompt for {perspective}.{mode}: {exc.message}") from None

    def for_request(self, request: ScoreRequest | PairRequest) -> tuple[list[ImageRef], str, str]:
        """(images in shown order, prompt text, mode the answer is parsed in: single or pair) for one request.
        Texts rated for one image (caption pairs and text groups) get the caption templates and one image."""
        from mjbench.responses import PairRequest

        if isinstance(request, PairRequest) and request.texts is not None:
            text = self.render(caption=request.prompt, perspective=request.perspective, mode="caption_pair",
                               scale=request.scale, aspect=request.aspect, texts=request.texts)
            return [request.images[0]], text, "pair"
        if isinstance(request, PairRequest):
            text = self.render(caption=request.prompt, perspective=request.perspective, mode="pair",
                               scale=request.scale, labels=request.labels, aspect=request.aspect)
            return list(request.images), text, "pair"
        if request.rates == "text":
            text = self.render(caption="", perspective=request.perspective, mode="caption_single",
                               scale=request.scale, aspect=request.aspect, text=request.prompt)
            return [request.image], text, "single"
        text = self.render(caption=request.prompt, perspective=request.perspective, mode="single",
                           scale=request.scale, aspect=request.aspect)
        return [request.image], text, "single"
