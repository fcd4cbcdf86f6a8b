"""One redaction step for every string that leaves a judge: errors, raw outputs, log messages.

`redact(text)` masks, in this order:
1. the exact value of every registered secret environment variable (`register_secret_env`: the runner
   registers each judge's `api_key_env`, the API adapters what their key variable resolves to), longest
   first, wherever it appears, including inside longer tokens. Values shorter than `MIN_SECRET_LEN`
   characters are not masked: they would mask ordinary words in raw outputs;
2. common key shapes, whatever their value: `sk-...` tokens (OpenAI, Anthropic `sk-ant-...`), Google `AIza...`
   keys, Hugging Face `hf_...` tokens, `Bearer <token>` (a token with a digit), the headers `Authorization`, `x-api-key`,
   `x-goog-api-key`, `api-key` (also `api_key`, `apikey`, `access_token`) written as `name: value` or
   `name=value` (quoted or not, as in a header, a query string or a JSON/dict repr), and the query
   parameters `key=` and `token=`.
Masked text becomes `***` (a header or parameter keeps its name: `x-api-key: ***`). Redact the whole text
before shortening it: a key cut in half is no longer a registered value, and its first half would survive.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from typing import Any

from mjbench.responses import Response

MASK = "***"
#: the shortest registered value that is masked
MIN_SECRET_LEN = 8
_SECRET_ENV: set[str] = set()

_TOKEN = r"[A-Za-z0-9._~+/=-]{8,}"
#: (pattern, replacement) for key shapes; the name of a header or parameter is kept, its value masked
_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_-]{8,}"), MASK),
    (re.compile(r"(?<![A-Za-z0-9])AIza[A-Za-z0-9_-]{20,}"), MASK),
    (re.compile(r"(?<![A-Za-z0-9])hf_[A-Za-z0-9]{20,}"), MASK),
    # a token of 8+ characters with a digit, so that "a flag bearer carrying..." in a model's answer stays
    (re.compile(rf"(\bbearer\s+)(?=[A-Za-z0-9._~+/=-]*\d){_TOKEN}", re.IGNORECASE), rf"\g<1>{MASK}"),
    (re.compile(r"(\b(?:authorization|x-api-key|x-goog-api-key|api[-_]?key|access_token)[\"']?\s*[:=]\s*[\"']?"
                r"(?:(?:bearer|basic|token)\s+)?)[^\s\"',;&}#]+", re.IGNORECASE), rf"\g<1>{MASK}"),
    (re.compile(r"(\b(?:key|token)=)[^&\s\"'#]+", re.IGNORECASE), rf"\g<1>{MASK}"),
)


def register_secret_env(name: str | None) -> None:
    """Mask the value of environment variable `name` (read at each `redact`, so a key set later counts)."""
    if name:
        _SECRET_ENV.add(name)


def secret_values() -> list[str]:
    """The registered secrets' current values worth masking, longest first (a key containing another wins)."""
    values = {os.environ.get(name) or "" for name in _SECRET_ENV}
    return sorted((v for v in values if len(v) >= MIN_SECRET_LEN), key=len, reverse=True)


def redact(text: Any) -> Any:
    """`text` with every secret value and key shape masked; anything that is not a string comes back as it is."""
    if not isinstance(text, str) or not text:
        return text
    for value in secret_values():
        text = text.replace(value, MASK)
    for pattern, replacement in _SHAPES:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_redact_value(v) for v in value)
    return value


def redact_response(resp: Response) -> Response:
    """A copy of `resp` whose string fields (error, raw_output, and every string inside `extra`) are redacted."""
    return dataclasses.replace(resp, error=redact(resp.error), raw_output=redact(resp.raw_output),
                               extra=_redact_value(resp.extra))


class RedactingFilter(logging.Filter):
    """Install on a handler: each record's message (its %-style arguments merged in), exception text and
    stack are redacted before any formatter sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit the format: keep both, readable
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
