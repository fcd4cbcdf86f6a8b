"""Turn a VLM judge's free text into ratings, a verdict and a status. It never guesses: an answer it cannot
read with certainty is a `parse_error` that says why.

Output contract (what the prompt templates ask for, as the final lines of the answer):
  single mode:  `RATING: <value>`
  pair mode:    `RATING A: <value>` / `RATING B: <value>` / `BETTER: A|B|TIE` (`|BOTH_BAD` where the task
                has that gold class: both images bad, unlike TIE = both equally good)
where <value> is a number inside the scale's range or one of its Likert level words. Pair verdicts in
GenAI-Bench's format are read too: `[[A>B]]`, `[[B>A]]`, `[[A=B=Good]]` (tie), `[[A=B=Bad]]` (both_bad),
`[[A=B]]` (tie); such a line alone at the end is a strict verdict without ratings.

Parsing order, and what each status means:
1. empty output -> `parse_error`.
2. strict: the last non-empty line(s) are exactly the contract lines (any case; markdown emphasis,
   surrounding spaces and a trailing period ignored). Only the final lines count: a different rating
   in the analysis above them is ignored. how = "strict".
3. lenient, when the final lines do not follow the contract (how = "lenient"):
   - a rating written right after a keyword anywhere: `Rating: 8/10`, `rating of 7`, `score is 6`,
     `I would rate it as Good`, `Rating (1-10): 7`; for pair mode `Rating A: 7`, `Image B: 4`,
     `Better: Image A`, `Image B is better`; a keyword line ending in `:` may hold its value alone on the
     next line (`**Rating:**` then `8`);
   - numeric scales only, if no keyword hit: `8/10` or `8 out of 10` anywhere, when the denominator is
     the scale's top (a date such as 12/05/2024 is not a fraction);
   - Likert scales only, if no keyword hit: the whole answer is one level word (`Good.`).
   Level words match longest first (`Above Average` is never read as `Average`). Bare numbers without a
   keyword or a denominator are never guessed at. No pattern crosses a line break: a keyword on one line
   never takes a value or another keyword from the next (except the `Rating:` / value-line form above).
4. Numbers: a point is a decimal point (`7.5`); a comma followed by one, two or four or more digits is a
   decimal comma (`7,5` = 7.5, `0,85` = 0.85), and so is `0,xxx`; a comma followed by exactly three digits
   after a non-zero whole part is ambiguous (`1,000`: a thousand or one?); a number with two or more
   separators (`1,000.5`, `1.2.3`) is unreadable, and exponent notation (`1e1`) is not accepted (no judge is
   asked for it; reading it is a guess at what the model meant). A number glued to letters (`3D`, `4K`) is
   not a rating. Each of these is a `parse_error` naming the number.
5. Different values for the same key -> `parse_error` ("ambiguous: ..."); so are two values joined by `or`,
   `and`, `&` or `/` (`Rating: 7 or 8`, `BETTER: A and B`, `Image A or Image B is better`), a negated verdict
   (`I don't think Image B is better`), a range (`7-8`, `7 to 8`), a value outside the range, and a
   denominator that is not the scale's top, with a message such as "rating 11 outside 1-10".
6. No rating found and a refusal phrase present ("I can't help with", "I'm sorry, but", ...) -> `refused`;
   otherwise `parse_error` ("no rating found"). A refusal phrase next to a valid rating does not matter.
In pair mode a verdict without ratings is `ok` (scores None), and two ratings without a verdict are `ok`
(verdict None: the runner derives the prediction from the scores). An explicit verdict is kept as the
judge wrote it even where its ratings disagree with it.

`PARSER_VERSION` names these rules; every parse records it in `Response.extra["parser"]`, and text judges
re-parse stored raw outputs whose version differs (`Judge.refresh`), so a parser fix reaches cached answers
without asking any judge again. Bump it whenever a change to the rules changes what some text parses to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from mjbench.responses import Response, Status
from mjbench.scales import NUMBER, Scale, get_scale

#: the version of the rules above; stored with every parse (see the module docstring)
PARSER_VERSION = "3"

How = Literal["strict", "lenient"]
Verdict = Literal["0", "1", "tie", "both_bad"]


@dataclass
class Parsed:
    status: Status
    score: float | None = None
    scores: tuple[float | None, float | None] | None = None
    verdict: Verdict | None = None
    error: str | None = None
    how: How | None = None

    def response(self, raw_output: str | None, **fields: Any) -> Response:
        """A Response carrying this parse, the raw text it came from and the parser version."""
        resp = Response(
            status=self.status, score=self.score, scores=self.scores, verdict=self.verdict,
            raw_output=raw_output, error=self.error, **fields,
        )
        resp.extra["parser"] = PARSER_VERSION
        if self.how is not None:
            resp.extra["parse"] = self.how
        return resp


@dataclass
class _Value:
    value: float | None
    error: str | None
    text: str


# -- text clean-up ---------------------------------------------------------------------------------

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
                         "\u2212": "-", "\u00a0": " "})


def _clean(text: str) -> str:
    """Normalise quotes and dashes and drop markdown emphasis, so `**Rating:** 8` reads `Rating: 8`."""
    text = text.translate(_QUOTES)
    text = re.sub(r"[*`]+|(?<![A-Za-z0-9])_+|_+(?![A-Za-z0-9])", "", text)
    return "\n".join(re.sub(r"^\s*(?:#+|>+|[-+]\s)\s*", "", line).strip() for line in text.splitlines())


def _lines(text: str) -> list[str]:
    return [ln for ln in _clean(text).splitlines() if ln]


# -- reading one value -----------------------------------------------------------------------------

_SP = r"[ \t]"  # a space that is not a line break: no pattern below crosses one
#: a whole number token, never cut short (`7,5` is not read as 7) and never glued to letters (`3D`)
_NUMBER = rf"{NUMBER}(?![A-Za-z\d])"
#: words that join two alternatives: `7 or 8`, `A and B`, `A/B`, `neither A nor B`
_JOIN = rf"{_SP}*(?:,{_SP}*)?(?:\bor\b|\bnor\b|\band\b|&|/){_SP}*"
#: what may stand between two level words that are one answer's two alternatives: `Good or Average`, `Poor-Good`
_LEVEL_JOIN = re.compile(rf"{_JOIN}|{_SP}*(?:-|\bto\b){_SP}*", re.IGNORECASE)
_NUM_VALUE = re.compile(
    rf"[\"'(\[]?{_SP}*(?P<v>{_NUMBER})(?:{_SP}*(?:/|out{_SP}+of){_SP}*(?P<den>{_NUMBER}))?"
    rf"(?P<alt>{_SP}*(?:,{_SP}*)?(?:\bor\b|\band\b|&){_SP}*{_NUMBER})?"
    rf"(?P<range>{_SP}*(?:-|\bto\b){_SP}*{_NUMBER}(?![/]))?",
    re.IGNORECASE,
)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def read_number(token: str) -> tuple[float | None, str | None]:
    """A number token (see rule 4 of the module docstring) -> (value, None) or (None, why it is not read)."""
    if re.search(r"[eE]", token):
        return None, f"exponent notation ({token}) is not accepted"
    separators = re.findall(r"[.,]", token)
    if len(separators) > 1:
        return None, f"unreadable number {token} (more than one separator)"
    if separators == [","]:
        whole, frac = token.split(",")
        if len(frac) == 3 and whole.lstrip("+-") != "0":
            return None, f"ambiguous number {token} (a thousands separator or a decimal comma?)"
        token = f"{whole}.{frac}"
    return float(token), None


def _numeric(token: str, scale: Scale) -> _Value:
    value, why = read_number(token)
    if value is None:
        return _Value(None, why, token)
    return _Value(value, scale.check(value), _fmt(value))


def _read_value(text: str, scale: Scale) -> _Value | None:
    """A rating written at the very start of `text` (one line), or None if none is there."""
    if scale.kind == "likert":
        m = re.match(rf"[\"'(\[]?{_SP}*", text)
        start = m.end() if m else 0
        lm = scale.level_pattern.match(text, start)
        if not lm:
            return None
        joined = _LEVEL_JOIN.match(text, lm.end())
        other = scale.level_pattern.match(text, joined.end()) if joined else None
        if other:
            shown = text[lm.start():other.end()]
            return _Value(None, f"ambiguous: two ratings ({shown})", shown)
        return _Value(scale.level_value(lm.group(0)), None, lm.group(0))
    m = _NUM_VALUE.match(text)
    if not m:
        return None
    shown = m.group(0).strip(" \t\"'([")
    if m.group("alt"):
        return _Value(None, f"ambiguous: two ratings ({shown})", shown)
    if m.group("range"):
        return _Value(None, f"a range ({shown}) is not one rating", shown)
    if m.group("den") is not None:
        den, why = read_number(m.group("den"))
        if den is None:
            return _Value(None, why, shown)
        if scale.high is not None and den != scale.high:
            return _Value(None, f"rating {shown} is not on the {scale.range_text} scale", shown)
    return _numeric(m.group("v"), scale)


def _read_exact(text: str, scale: Scale) -> _Value | None:
    """A value that is the whole of `text` (strict mode): a bare number or a bare level word."""
    text = text.strip().rstrip(".").strip()
    if scale.kind == "likert":
        lm = scale.level_pattern.fullmatch(text)
        return _Value(scale.level_value(lm.group(0)), None, lm.group(0)) if lm else None
    if re.fullmatch(_NUMBER, text):
        return _numeric(text, scale)
    return None


def _value_after(text: str, match: re.Match[str], scale: Scale) -> _Value | None:
    """The value after a keyword: on the same line, or alone on the next line after `Rating:`."""
    end = match.end()
    line_end = text.find("\n", end)
    rest = text[end:] if line_end < 0 else text[end:line_end]
    if rest.strip() or line_end < 0 or not match.group(0).rstrip().endswith((":", "=")):
        return _read_value(rest, scale)
    following = text[line_end + 1:].split("\n", 1)[0]
    return _read_exact(following, scale)


def _resolve(found: list[_Value], what: str) -> _Value | None:
    """One value from all the places it was found: conflicting values are ambiguous."""
    if not found:
        return None
    distinct: dict[str, _Value] = {}
    for v in found:
        distinct.setdefault(v.text.lower() if v.value is None else _fmt(v.value), v)
    if len(distinct) == 1:
        return found[-1]
    shown = " and ".join(v.text for v in distinct.values())
    return _Value(None, f"ambiguous: {what} given as {shown}", shown)


# -- refusals --------------------------------------------------------------------------------------

REFUSAL_PATTERNS = (
    r"\bi(?:'m| am) sorry,? but\b",
    r"\bi (?:can't|cannot|can not) (?:help|assist|comply|provide|evaluate|rate|judge|fulfil|do that|support)",
    r"\bi(?:'m| am) (?:unable|not able) to (?:help|assist|comply|provide|evaluate|rate|judge|view|analy)",
    r"\bi (?:won't|will not) (?:help|assist|provide|evaluate|rate|judge)",
    r"\bi must (?:decline|refuse)\b",
    r"\bi(?:'m| am) not comfortable\b",
)
_REFUSAL = re.compile("|".join(REFUSAL_PATTERNS), re.IGNORECASE)


def _refusal(text: str) -> str | None:
    m = _REFUSAL.search(_clean(text))
    return f"judge refused ({m.group(0)!r})" if m else None


def _failure(text: str, message: str) -> Parsed:
    refused = _refusal(text)
    if refused:
        return Parsed("refused", error=refused)
    return Parsed("parse_error", error=message)


# -- single mode -----------------------------------------------------------------------------------

_STRICT_SINGLE = re.compile(rf"rating{_SP}*:{_SP}*(?P<v>.+)", re.IGNORECASE)
_KEYWORD = re.compile(
    rf"(?:\b(?:rating|score){_SP}*(?:\([^)\n]*\))?{_SP}*(?:[:=]|\bis\b|\bof\b)?"
    rf"|\brated?{_SP}+(?:it|this(?:{_SP}+image)?|the{_SP}+image)?{_SP}*(?:as\b|at\b|an?\b)?){_SP}*",
    re.IGNORECASE,
)
#: `8/10` or `8 out of 10` anywhere, but not a piece of a date or a longer fraction (`12/05/2024`)
_FRACTION = re.compile(
    rf"(?<![\w.,/])(?P<v>{_NUMBER}){_SP}*(?:/|out{_SP}+of){_SP}*(?P<den>{_NUMBER})(?![/.,]?\d)", re.IGNORECASE
)


def parse_single(text: str | None, scale: Scale | str) -> Parsed:
    """One image's rating (see the module docstring for the rules)."""
    scale = get_scale(scale) if isinstance(scale, str) else scale
    if not text or not text.strip():
        return Parsed("parse_error", error="empty output")
    lines = _lines(text)
    if lines:
        m = _STRICT_SINGLE.fullmatch(lines[-1])
        v = _read_exact(m.group("v"), scale) if m else None
        if v is not None:
            return _single(v, "strict")
    cleaned = _clean(text)
    found = [v for m in _KEYWORD.finditer(cleaned) if (v := _value_after(cleaned, m, scale))]
    if not found and scale.kind == "numeric":
        found = [v for m in _FRACTION.finditer(cleaned)
                 if read_number(m.group("den"))[0] == scale.high and (v := _read_value(m.group(0), scale))]
    if not found and scale.kind == "likert" and len(lines) == 1:
        v = _read_exact(lines[0].strip("\"'!"), scale)
        found = [v] if v else []
    v = _resolve(found, "rating")
    if v is None:
        return _failure(text, f"no rating found (expected a final line 'RATING: <{scale.range_text}>')")
    return _single(v, "lenient")


def _single(v: _Value, how: How) -> Parsed:
    if v.error or v.value is None:
        return Parsed("parse_error", error=v.error, how=how)
    return Parsed("ok", score=v.value, how=how)


# -- pair mode -------------------------------------------------------------------------------------

_STRICT_PAIR = (
    re.compile(rf"rating{_SP}*a{_SP}*:{_SP}*(?P<v>.+)", re.IGNORECASE),
    re.compile(rf"rating{_SP}*b{_SP}*:{_SP}*(?P<v>.+)", re.IGNORECASE),
    re.compile(rf"better{_SP}*:{_SP}*(?P<v>a|b|tie|both[ _-]?bad){_SP}*\.?", re.IGNORECASE),
)
#: GenAI-Bench's verdict format: [[A>B]], [[B>A]], [[A=B=Good]], [[A=B=Bad]], [[A=B]]
_BRACKET = re.compile(
    rf"\[\[{_SP}*(?:(?P<ab>a{_SP}*>{_SP}*b)|(?P<ba>b{_SP}*>{_SP}*a)"
    rf"|a{_SP}*={_SP}*b(?:{_SP}*={_SP}*(?P<q>good|bad))?){_SP}*\]\]",
    re.IGNORECASE,
)
_PAIR_RATING = re.compile(
    rf"(?:\brating{_SP}*(?:for{_SP}+|of{_SP}+)?(?:image{_SP}*)?(?P<k1>a|b)\b{_SP}*(?:\([^)\n]*\))?{_SP}*"
    rf"(?:[:=]|\bis\b)?"
    rf"|\bimage{_SP}*(?P<k2>a|b)\b{_SP}*(?:(?:rating|score){_SP}*(?:\([^)\n]*\))?{_SP}*(?:[:=]|\bis\b)?"
    rf"|[:=])){_SP}*",
    re.IGNORECASE,
)
_CHOICE = rf"(?:image{_SP}*)?[\"']?(?:a|b|tie|both[ _-]?bad|both|neither|equal|none)\b"
_PAIR_VERDICT = re.compile(
    rf"\bbetter(?:{_SP}+image)?{_SP}*[:=]{_SP}*(?:image{_SP}*)?[\"']?"
    rf"(?P<v1>a|b|tie|both[ _-]?bad|both|neither|equal|none)\b"
    rf"(?P<alt>{_JOIN}{_CHOICE})?"
    rf"|(?P<pre>\bimage{_SP}*[ab]{_JOIN})?"
    rf"\bimage{_SP}*(?P<v2>a|b){_SP}+is{_SP}+(?:the{_SP}+)?(?:better|preferred|superior)\b",
    re.IGNORECASE,
)
#: a negation earlier in the same clause: "I don't think Image B is better" names no verdict
_NEGATED = re.compile(r"(?:\bnot\b|n't\b|\bnever\b)[^.;:!?\n]*$", re.IGNORECASE)
_VERDICTS: dict[str, Verdict] = {"a": "0", "b": "1", "tie": "tie", "both": "tie", "neither": "tie",
                                 "equal": "tie", "none": "tie", "both_bad": "both_bad"}
_SHOWN = {"0": "A", "1": "B", "tie": "TIE", "both_bad": "BOTH_BAD"}


def _choice(text: str) -> Verdict:
    """A verdict word as written (`both bad`, `Both-Bad` and `both_bad` alike)."""
    return _VERDICTS[re.sub(r"[ _-]+", "_", text.lower())]


def _bracket(m: re.Match[str]) -> Verdict:
    if m.group("ab"):
        return "0"
    if m.group("ba"):
        return "1"
    return "both_bad" if (m.group("q") or "").lower() == "bad" else "tie"


def _verdicts(cleaned: str) -> tuple[list[Verdict], str | None]:
    """Every verdict in the text, or why one of them cannot be read."""
    out: list[Verdict] = []
    for m in _PAIR_VERDICT.finditer(cleaned):
        shown = m.group(0).strip()
        if m.group("alt") or m.group("pre"):
            return out, f"ambiguous: better given as {shown!r}"
        if m.group("v2") and _NEGATED.search(cleaned[:m.start()]):
            return out, f"ambiguous: a negated verdict ({shown!r})"
        out.append(_choice(m.group("v1") or m.group("v2")))
    out += [_bracket(m) for m in _BRACKET.finditer(cleaned)]
    return out, None


def parse_pair(text: str | None, scale: Scale | str) -> Parsed:
    """Both images' ratings and the verdict, in shown order (A = "0", B = "1")."""
    scale = get_scale(scale) if isinstance(scale, str) else scale
    if not text or not text.strip():
        return Parsed("parse_error", error="empty output")
    lines = _lines(text)
    if len(lines) >= 3:
        ma, mb, mv = (p.fullmatch(ln) for p, ln in zip(_STRICT_PAIR, lines[-3:], strict=True))
        va = _read_exact(ma.group("v"), scale) if ma else None
        vb = _read_exact(mb.group("v"), scale) if mb else None
        if va is not None and vb is not None and mv is not None:
            return _pair(va, vb, _choice(mv.group("v")), "strict")
    if lines and (mb := _BRACKET.fullmatch(lines[-1].rstrip("."))):
        return _pair(None, None, _bracket(mb), "strict")
    cleaned = _clean(text)
    ratings: dict[str, list[_Value]] = {"a": [], "b": []}
    for m in _PAIR_RATING.finditer(cleaned):
        v = _value_after(cleaned, m, scale)
        if v is not None:
            ratings[(m.group("k1") or m.group("k2")).lower()].append(v)
    verdicts, why = _verdicts(cleaned)
    if why:
        return Parsed("parse_error", error=why, how="lenient")
    va, vb = _resolve(ratings["a"], "rating A"), _resolve(ratings["b"], "rating B")
    if len(set(verdicts)) > 1:
        names = " and ".join(dict.fromkeys(_SHOWN[v] for v in verdicts))
        return Parsed("parse_error", error=f"ambiguous: better given as {names}", how="lenient")
    verdict = verdicts[-1] if verdicts else None
    if va is None and vb is None and verdict is None:
        return _failure(text, "no ratings or verdict found (expected final lines 'RATING A: ...', "
                              "'RATING B: ...', 'BETTER: A|B|TIE' or a verdict such as [[A>B]])")
    if verdict is None and (va is None or vb is None):
        missing = "B" if vb is None else "A"
        return Parsed("parse_error", error=f"rating {missing} and the verdict are missing", how="lenient")
    return _pair(va, vb, verdict, "lenient")


def _pair(va: _Value | None, vb: _Value | None, verdict: Verdict | None, how: How) -> Parsed:
    for key, v in (("A", va), ("B", vb)):
        if v is not None and (v.error or v.value is None):
            return Parsed("parse_error", error=f"image {key}: {v.error}", how=how)
    scores = (va.value if va else None, vb.value if vb else None)
    return Parsed("ok", scores=None if scores == (None, None) else scores, verdict=verdict, how=how)


def parse_output(text: str | None, mode: str, scale: Scale | str) -> Parsed:
    """Dispatch on the judge's mode (`single` or `pair`)."""
    return parse_pair(text, scale) if mode == "pair" else parse_single(text, scale)
