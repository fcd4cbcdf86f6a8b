"""One redaction step: key values and key shapes masked in messages, raw outputs, responses and log records;
and end to end, no byte of a key reaches the run directory, the store or the console."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from stub_server import LEAK_MODES, StubServer, leaking_responder
from typer.testing import CliRunner

from mjbench.redact import MASK, RedactingFilter, redact, redact_response, register_secret_env
from mjbench.responses import Response

KEY = "sk-redact-SECRET-13572468"
PLAIN_KEY = "plainSecretValue9"  # no recognisable shape: only its registered value can mask it


@pytest.fixture(autouse=True)
def _keys(monkeypatch):
    monkeypatch.setenv("REDACT_TEST_KEY", KEY)
    monkeypatch.setenv("REDACT_PLAIN_KEY", PLAIN_KEY)
    register_secret_env("REDACT_TEST_KEY")
    register_secret_env("REDACT_PLAIN_KEY")


def substrings(secret: str, n: int = 8) -> list[str]:
    return [secret[i:i + n] for i in range(len(secret) - n + 1)]


@pytest.mark.parametrize("text, expected", [
    # registered values, anywhere, even inside longer tokens
    (f"Incorrect API key provided: {KEY}.", f"Incorrect API key provided: {MASK}."),
    (f"echo {PLAIN_KEY} and x{PLAIN_KEY}y", f"echo {MASK} and x{MASK}y"),
    # key shapes, whatever their value
    ("token sk-proj-AbC123xyz_456-def here", f"token {MASK} here"),
    ("sk-ant-api03-abcdEFGH1234", MASK),
    ("key AIzaSyA-1234567890abcdefghijKLMN", f"key {MASK}"),
    ("hf_abcdefghijklmnopqrstuvwxyz012", MASK),
    ("Authorization: Bearer eyJhbGciOi.J9abc123", f"Authorization: Bearer {MASK}"),
    ("authorization=Basic dXNlcjpwYXNzMTIz", f"authorization=Basic {MASK}"),
    ("x-api-key: abcd1234efgh", f"x-api-key: {MASK}"),
    ("{'x-goog-api-key': 'not-a-known-shape-42'}", f"{{'x-goog-api-key': '{MASK}'}}"),
    ('{"api_key": "zzz-999"}', f'{{"api_key": "{MASK}"}}'),
    ("GET /v1/models?key=abc123&alt=json", f"GET /v1/models?key={MASK}&alt=json"),
    ("https://h/x?api_key=s3cr3t#frag", f"https://h/x?api_key={MASK}#frag"),
    ("?access_token=ya29.a0AfH6&x=1", f"?access_token={MASK}&x=1"),
    # ordinary words stay
    ("A flag bearer carrying a banner; the monkey=banana; skyline.", None),
    ("RATING A: 8\nRATING B: 3\nBETTER: A", None),
])
def test_patterns(text, expected):
    assert redact(text) == (text if expected is None else expected)


def test_short_values_and_non_strings_are_left_alone(monkeypatch):
    monkeypatch.setenv("REDACT_SHORT", "abc")
    register_secret_env("REDACT_SHORT")
    register_secret_env(None)
    register_secret_env("REDACT_UNSET_VARIABLE")
    assert redact("abcdef cabbage") == "abcdef cabbage"
    assert redact(None) is None and redact(7) == 7 and redact("") == ""


def test_value_read_at_redaction_time(monkeypatch):
    """A key set after registration (e.g. by a test or a .env loader) is masked too."""
    register_secret_env("REDACT_LATE_KEY")
    assert redact("late-value-123456") == "late-value-123456"
    monkeypatch.setenv("REDACT_LATE_KEY", "late-value-123456")
    assert redact("late-value-123456") == MASK


def test_redact_before_shortening():
    """Cutting first would leave the first half of the key, which is no longer the registered value."""
    message = "x" * (300 - len(PLAIN_KEY) // 2) + PLAIN_KEY + " tail"
    cut_first = redact(message[:300])
    assert PLAIN_KEY[:8] in cut_first  # the bug this module's rule prevents
    redacted_first = redact(message)[:300]
    assert not any(s in redacted_first for s in substrings(PLAIN_KEY))


def test_redact_response_every_string_field():
    resp = Response(status="parse_error", raw_output=f"my key is {KEY}", error=f"HTTP 400: {PLAIN_KEY}",
                    extra={"finish_reason": "stop", "earlier_outputs": [f"a {KEY}", f"b {PLAIN_KEY}"],
                           "nested": {"header": f"Bearer {KEY}"}, "n": 3}, input_tokens=5)
    out = redact_response(resp)
    text = repr(out)
    assert KEY not in text and PLAIN_KEY not in text
    assert out.raw_output == f"my key is {MASK}" and out.error == f"HTTP 400: {MASK}"
    assert out.extra == {"finish_reason": "stop", "earlier_outputs": [f"a {MASK}", f"b {MASK}"],
                         "nested": {"header": f"Bearer {MASK}"}, "n": 3}
    assert out.input_tokens == 5 and resp.raw_output == f"my key is {KEY}"  # a copy; the original is untouched


def test_logging_filter_with_args_exceptions_and_bad_formats():
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Collect()
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())
    log = logging.getLogger("mjbench.test_redact")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("judge %s failed: %s", "x", f"HTTP 401 key {KEY}")
        log.warning("dict args %(key)s", {"key": PLAIN_KEY})
        try:
            raise RuntimeError(f"connection to https://h/?key={PLAIN_KEY} failed")
        except RuntimeError:
            log.exception("request failed")
        log.warning("bad format %d", f"not a number {KEY}")
    finally:
        log.removeHandler(handler)
    joined = "\n".join(records)
    assert KEY not in joined and PLAIN_KEY not in joined, joined
    assert f"judge x failed: HTTP 401 key {MASK}" in records[0]
    assert "RuntimeError" in records[2] and MASK in records[2]
    assert "bad format" in records[3]


# -- end to end: `mjbench run` against a server that echoes the key every way it can ------------------------

def test_no_byte_of_the_key_leaves_a_run(tmp_path: Path, monkeypatch, capfd):
    from mjbench.cli import app

    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    secret = "sk-e2e-LEAKCHECK-24681357"
    monkeypatch.setenv("LEAK_E2E_KEY", secret)
    out = tmp_path / "run"
    with StubServer(leaking_responder) as stub:
        judge = tmp_path / "leaky.yaml"
        judge.write_text(
            "name: leaky-vlm\nadapter: openai\nfamily: api\nmodel: stub-model\nmode: pair\n"
            f"base_url: {stub.url}/v1\napi_key_env: LEAK_E2E_KEY\nscales: ['1-10']\nmax_concurrency: 2\n"
            "max_retries: 0\n")
        args = ["run", "--judges", str(judge), "--tasks", "synthetic-quality,synthetic-bias", "--limit", "4",
                "--out", str(out)]
        result = CliRunner().invoke(app, args, catch_exceptions=False)
        assert len(stub.requests) >= len(LEAK_MODES)  # every leak mode was served
        assert all(r.headers.get("authorization") == f"Bearer {secret}" for r in stub.requests)
    assert result.exit_code == 1, result.output  # the error modes leave requests unfinished
    captured = capfd.readouterr()
    console = result.output + (result.stderr if result.stderr_bytes is not None else "")
    needles = [secret, *substrings(secret)]
    places = {"console (CliRunner)": console, "stdout": captured.out, "stderr": captured.err}
    files = [f for f in out.rglob("*") if f.is_file()]
    assert any(f.name == "records.jsonl" for f in files)
    for f in files:
        places[str(f)] = f.read_bytes().decode("utf-8", "replace")
    stores = [f for f in files if f.suffix in (".sqlite", ".db")]
    assert stores, [f.name for f in files]
    for f in stores:
        with sqlite3.connect(f) as conn:
            places[f"{f} (dump)"] = "\n".join(conn.iterdump())
    leaks = [(where, n) for where, text in places.items() for n in needles if n in text]
    assert not leaks, leaks
    records = (out / "records.jsonl").read_text()
    assert MASK in records  # the echoed answers and messages are there, masked
