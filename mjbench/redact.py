"""One redaction step for every string that leaves a judge: errors, raw outputs, log messages.

SKELETON (interface agreed between the runner and the adapters; the full implementation follows):
- `register_secret_env(name)`: an environment variable whose value is a secret (a judge's `api_key_env`).
- `redact(text)`: the text with every registered secret value and common key shapes masked.
- `redact_response(resp)`: a Response whose string fields went through `redact`.
- `RedactingFilter`: a logging filter applying `redact` to every record's message.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

from mjbench.responses import Response

MASK = "***"
_SECRET_ENV: set[str] = set()


def register_secret_env(name: str | None) -> None:
    if name:
        _SECRET_ENV.add(name)


def redact(text: Any) -> Any:
    if not isinstance(text, str) or not text:
        return text
    for name in _SECRET_ENV:
        value = os.environ.get(name)
        if value:
            text = text.replace(value, MASK)
    return text


def redact_response(resp: Response) -> Response:
    return dataclasses.replace(resp, error=redact(resp.error), raw_output=redact(resp.raw_output))


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True
