"""The output contract: a table of messy, real-world-style answers for every scale and both modes."""

from __future__ import annotations

import pytest

from mjbench.parsing import PARSER_VERSION, parse_output, parse_pair, parse_single, read_number
from mjbench.scales import PROMPT_SCALES

ANALYSIS = "The image shows a red cube resting on a blue ball. The cube's colour is right; the ball looks flat.\n\n"

# (scale, text, status, score, how, error substring)
SINGLE = [
    # --- 1-10 ---
    ("1-10", ANALYSIS + "RATING: 8", "ok", 8, "strict", None),
    ("1-10", ANALYSIS + "RATING: 8.", "ok", 8, "strict", None),
    ("1-10", ANALYSIS + "rating:8  ", "ok", 8, "strict", None),
    ("1-10", ANALYSIS + "**RATING:** 8", "ok", 8, "strict", None),
    ("1-10", ANALYSIS + "RATING: 7.5", "ok", 7.5, "strict", None),
    ("1-10", "Rating: 3 in the draft.\n" + ANALYSIS + "RATING: 9", "ok", 9, "strict", None),  # final line wins
    ("1-10", ANALYSIS + "**Rating:** 8/10", "ok", 8, "lenient", None),
    ("1-10", ANALYSIS + "I would give this image 8 out of 10.", "ok", 8, "lenient", None),
    ("1-10", ANALYSIS + "Overall rating: 6 (the ball is wrong)\nThanks!", "ok", 6, "lenient", None),
    ("1-10", "### Final Score\nScore: 4", "ok", 4, "lenient", None),
    ("1-10", "Rating (1-10): 7", "ok", 7, "lenient", None),
    ("1-10", "I'd rate it 5 because the cube is there but the ball is not.", "ok", 5, "lenient", None),
    ("1-10", "The rating is 9.\n\nRating: 9/10", "ok", 9, "lenient", None),  # the same value twice is fine
    ("1-10", ANALYSIS + "RATING: 11", "parse_error", None, "strict", "rating 11 outside 1-10"),
    ("1-10", ANALYSIS + "RATING: 0", "parse_error", None, "strict", "rating 0 outside 1-10"),
    ("1-10", ANALYSIS + "RATING: -1", "parse_error", None, "strict", "rating -1 outside 1-10"),
    ("1-10", "Rating: 7\nOn reflection, final rating: 8", "parse_error", None, "lenient", "ambiguous"),
    ("1-10", "Rating: 7-8", "parse_error", None, "lenient", "a range (7-8)"),
    ("1-10", "Rating: 4/5", "parse_error", None, "lenient", "not on the 1-10 scale"),
    ("1-10", ANALYSIS + "RATING: Good", "parse_error", None, None, "no rating found"),
    ("1-10", "There are 2 cubes and 3 balls in the picture, taken on 12/05/2024.", "parse_error", None, None,
     "no rating found"),
    ("1-10", "", "parse_error", None, None, "empty output"),
    ("1-10", "   \n  ", "parse_error", None, None, "empty output"),
    ("1-10", "I'm sorry, but I can't help with evaluating this image.", "refused", None, None, "refused"),
    ("1-10", "I\u2019m sorry, but I can\u2019t help with that.", "refused", None, None, "refused"),
    ("1-10", "I cannot assist with rating this content.", "refused", None, None, "refused"),
    ("1-10", "I'm sorry, but the cube is missing.\nRATING: 2", "ok", 2, "strict", None),  # rated: not a refusal
    # numbers are read whole or not at all: never their first digits
    ("1-10", ANALYSIS + "RATING: 7,5", "ok", 7.5, "strict", None),  # a decimal comma
    ("1-10", ANALYSIS + "Rating: 7,5/10", "ok", 7.5, "lenient", None),
    ("1-10", ANALYSIS + "Rating: 8.5/10", "ok", 8.5, "lenient", None),
    ("1-10", ANALYSIS + "RATING: 1,000", "parse_error", None, "strict", "ambiguous number 1,000"),
    ("1-10", ANALYSIS + "Rating: 1,000 points", "parse_error", None, "lenient", "ambiguous number 1,000"),
    ("1-10", ANALYSIS + "RATING: 1e1", "parse_error", None, "strict", "exponent notation (1e1)"),
    ("1-10", ANALYSIS + "Score: 1E1 overall", "parse_error", None, "lenient", "exponent notation (1E1)"),
    ("1-10", ANALYSIS + "RATING: 7.5.3", "parse_error", None, "strict", "unreadable number 7.5.3"),
    ("1-10", ANALYSIS + "RATING: 1.000,5", "parse_error", None, "strict", "unreadable number 1.000,5"),
    ("1-10", "Rating: 3D render, looks fine", "parse_error", None, None, "no rating found"),  # 3D is no rating
    ("1-10", ANALYSIS + "RATING: 8, since the ball is flat", "ok", 8, "lenient", None),  # a comma, then words
    ("1-10", "Rating: 8 or 9", "parse_error", None, "lenient", "ambiguous: two ratings (8 or 9)"),
    ("1-10", "Rating: 7 to 8", "parse_error", None, "lenient", "a range (7 to 8)"),
    ("1-10", "**Rating:**\n8", "ok", 8, "lenient", None),  # a value alone on the line after 'Rating:'
    ("1-10", "Rating:\nThe cube is there, 2 balls. 8", "parse_error", None, None, "no rating found"),
    ("1-5", "Taken on 12/05/2024, two cubes.", "parse_error", None, None, "no rating found"),  # a date
    # --- 1-5 ---
    ("1-5", ANALYSIS + "RATING: 4", "ok", 4, "strict", None),
    ("1-5", ANALYSIS + "Rating: 4 out of 5", "ok", 4, "lenient", None),
    ("1-5", ANALYSIS + "RATING: 6", "parse_error", None, "strict", "rating 6 outside 1-5"),
    ("1-5", ANALYSIS + "Rating: 8/10", "parse_error", None, "lenient", "not on the 1-5 scale"),
    ("1-5", "I give it 3/5.", "ok", 3, "lenient", None),
    # --- 0-1 ---
    ("0-1", ANALYSIS + "RATING: 0.85", "ok", 0.85, "strict", None),
    ("0-1", ANALYSIS + "RATING: .5", "ok", 0.5, "strict", None),
    ("0-1", ANALYSIS + "RATING: 0", "ok", 0, "strict", None),
    ("0-1", ANALYSIS + "RATING: 1.0", "ok", 1, "strict", None),
    ("0-1", ANALYSIS + "RATING: 7", "parse_error", None, "strict", "rating 7 outside 0-1"),
    ("0-1", "**Score:** 0.3", "ok", 0.3, "lenient", None),
    ("0-1", ANALYSIS + "RATING: 0,85", "ok", 0.85, "strict", None),  # was read as 0
    ("0-1", ANALYSIS + "RATING: 0,850", "ok", 0.85, "strict", None),  # 0,xxx is no thousands separator
    # --- 0-100 ---
    ("0-100", ANALYSIS + "RATING: 85", "ok", 85, "strict", None),
    ("0-100", ANALYSIS + "RATING: 0", "ok", 0, "strict", None),
    ("0-100", ANALYSIS + "RATING: 100", "ok", 100, "strict", None),
    ("0-100", ANALYSIS + "RATING: 101", "parse_error", None, "strict", "rating 101 outside 0-100"),
    ("0-100", "I'd give it 72 out of 100.", "ok", 72, "lenient", None),
    ("0-100", "Score: 7/10", "parse_error", None, "lenient", "not on the 0-100 scale"),
    # --- likert-5 ---
    ("likert-5", ANALYSIS + "RATING: Good", "ok", 4, "strict", None),
    ("likert-5", ANALYSIS + "RATING: good.", "ok", 4, "strict", None),
    ("likert-5", ANALYSIS + "RATING: EXTREMELY POOR", "ok", 1, "strict", None),
    ("likert-5", ANALYSIS + "**Rating:** Outstanding", "ok", 5, "strict", None),
    ("likert-5", ANALYSIS + "Rating: Average, since the ball is flat.", "ok", 3, "lenient", None),
    ("likert-5", "Good.", "ok", 4, "lenient", None),
    ("likert-5", ANALYSIS + "RATING: Very Good", "parse_error", None, None, "no rating found"),  # not a 5-level word
    ("likert-5", ANALYSIS + "RATING: 4", "parse_error", None, None, "no rating found"),  # numbers are not levels
    ("likert-5", "The cube looks good but the ball is poor.", "parse_error", None, None, "no rating found"),
    ("likert-5", "Rating: Good\nFinal rating: Poor", "parse_error", None, "lenient", "ambiguous"),
    ("likert-5", "I'm sorry, but I can't help with that.", "refused", None, None, "refused"),
    ("likert-5", "Rating: Good or Average", "parse_error", None, "lenient", "ambiguous: two ratings (Good or Average)"),
    ("likert-5", "Rating: Good, and the ball is flat", "ok", 4, "lenient", None),
    ("likert-5", "", "parse_error", None, None, "empty output"),
    # --- likert-7 ---
    ("likert-7", ANALYSIS + "RATING: Above Average", "ok", 5, "strict", None),
    ("likert-7", ANALYSIS + "RATING: Average", "ok", 4, "strict", None),
    ("likert-7", ANALYSIS + "RATING: below average", "ok", 3, "strict", None),
    ("likert-7", ANALYSIS + "The overall rating is Above Average.", "ok", 5, "lenient", None),
    ("likert-7", ANALYSIS + "I would rate this image as Below Average", "ok", 3, "lenient", None),
    ("likert-7", ANALYSIS + "RATING: Excellent", "parse_error", None, None, "no rating found"),
    ("likert-7", "Rating: Below Average to Average", "parse_error", None, "lenient", "ambiguous: two ratings"),
    ("likert-7", "Rating: Above\nAverage", "parse_error", None, None, "no rating found"),  # words across lines
    # --- likert-10 ---
    ("likert-10", ANALYSIS + "RATING: Very Good", "ok", 8, "strict", None),
    ("likert-10", ANALYSIS + "RATING: Good", "ok", 7, "strict", None),
    ("likert-10", ANALYSIS + "RATING: Very Poor", "ok", 2, "strict", None),
    ("likert-10", ANALYSIS + "RATING: Excellent", "ok", 9, "strict", None),
    ("likert-10", ANALYSIS + "**Rating**: _Very Good_", "ok", 8, "strict", None),
    ("likert-10", "Rating: Very Good (the ball is slightly off)", "ok", 8, "lenient", None),
    ("likert-10", "Rating: Above Average\nRating: Average\nHope this helps.", "parse_error", None, "lenient", "ambiguous"),
]


@pytest.mark.parametrize("scale, text, status, score, how, error", SINGLE)
def test_single_table(scale, text, status, score, how, error):
    p = parse_single(text, scale)
    assert p.status == status, p
    assert p.score == score
    assert p.how == how
    if error is None:
        assert p.error is None
    else:
        assert error in p.error
    assert p.scores is None and p.verdict is None


def test_table_covers_every_scale():
    assert {row[0] for row in SINGLE} == set(PROMPT_SCALES)
    assert {row[0] for row in PAIR} == set(PROMPT_SCALES)


PAIR_OK = "Image A shows the cube; Image B misses it.\n\n"
# (scale, text, status, scores, verdict, how, error substring)
PAIR = [
    ("1-10", PAIR_OK + "RATING A: 8\nRATING B: 3\nBETTER: A", "ok", (8, 3), "0", "strict", None),
    ("1-10", PAIR_OK + "RATING A: 2\nRATING B: 9\nBETTER: B.", "ok", (2, 9), "1", "strict", None),
    ("1-10", PAIR_OK + "rating a: 5\nrating b: 5\nbetter: tie", "ok", (5, 5), "tie", "strict", None),
    ("1-10", PAIR_OK + "**RATING A:** 8\n**RATING B:** 3\n**BETTER:** A", "ok", (8, 3), "0", "strict", None),
    ("1-10", PAIR_OK + "RATING A: 8/10\nRATING B: 3/10\nBETTER: Image A", "ok", (8, 3), "0", "lenient", None),
    ("1-10", "BETTER: B\nRATING A: 4\nRATING B: 7\nThat's my answer.", "ok", (4, 7), "1", "lenient", None),
    ("1-10", "Image A: 6\nImage B: 9\nImage B is better.", "ok", (6, 9), "1", "lenient", None),
    ("1-10", "Rating for Image A: 7. Rating for Image B: 2.", "ok", (7, 2), None, "lenient", None),
    ("1-10", "Image A is better overall.", "ok", None, "0", "lenient", None),
    ("1-10", "RATING A: 8\nRATING B: 12\nBETTER: A", "parse_error", None, None, "strict", "image B: rating 12 outside 1-10"),
    ("1-10", "RATING A: 8\nRATING A: 6\nRATING B: 3", "parse_error", None, None, "lenient", "image A: ambiguous"),
    ("1-10", "Better: A\n...on second thought, Better: B", "parse_error", None, None, "lenient",
     "ambiguous: better given as A and B"),
    ("1-10", "RATING A: 8", "parse_error", None, None, "lenient", "rating B and the verdict are missing"),
    # no pattern crosses a line break: "Image B" does not swallow the next line's "RATING A"
    ("1-10", "...I prefer Image B\nRATING A: 4\nRATING B: 8", "ok", (4, 8), None, "lenient", None),
    ("1-10", "Image A:\n7\nImage B:\n3", "ok", (7, 3), None, "lenient", None),
    ("1-10", "BETTER: A and B", "parse_error", None, None, "lenient", "ambiguous: better given as 'BETTER: A and B'"),
    ("1-10", "Better: A or B, hard to say", "parse_error", None, None, "lenient", "ambiguous: better given as"),
    ("1-10", "BETTER: Image A / Image B", "parse_error", None, None, "lenient", "ambiguous: better given as"),
    ("1-10", "Image A or Image B is better, I cannot tell.", "parse_error", None, None, "lenient", "ambiguous"),
    ("1-10", "Neither Image A nor Image B is better.", "parse_error", None, None, "lenient", "ambiguous"),
    ("1-10", "I don't think Image B is better.", "parse_error", None, None, "lenient", "a negated verdict"),
    ("1-10", "Image B is better than Image A.", "ok", None, "1", "lenient", None),
    ("1-10", "Better: A. Image A is better.", "ok", None, "0", "lenient", None),  # the same verdict twice
    ("1-10", "RATING A: 7 or 8\nRATING B: 3\nBETTER: A", "parse_error", None, None, "lenient",
     "image A: ambiguous: two ratings (7 or 8)"),
    ("1-10", "RATING A: 7,5\nRATING B: 3\nBETTER: A", "ok", (7.5, 3), "0", "strict", None),
    ("1-10", "RATING A: 1,000\nRATING B: 3\nBETTER: A", "parse_error", None, None, "strict",
     "image A: ambiguous number 1,000"),
    ("1-10", "Both images are fine.", "parse_error", None, None, None, "no ratings or verdict found"),
    ("1-10", "I'm sorry, but I can't help with comparing these images.", "refused", None, None, None, "refused"),
    ("1-10", "", "parse_error", None, None, None, "empty output"),
    ("1-5", PAIR_OK + "RATING A: 4\nRATING B: 2\nBETTER: A", "ok", (4, 2), "0", "strict", None),
    ("1-5", PAIR_OK + "RATING A: 4\nRATING B: 7\nBETTER: B", "parse_error", None, None, "strict", "outside 1-5"),
    ("0-1", PAIR_OK + "RATING A: 0.9\nRATING B: 0.2\nBETTER: A", "ok", (0.9, 0.2), "0", "strict", None),
    ("0-100", PAIR_OK + "RATING A: 35\nRATING B: 90\nBETTER: B", "ok", (35, 90), "1", "strict", None),
    ("likert-5", PAIR_OK + "RATING A: Good\nRATING B: Poor\nBETTER: A", "ok", (4, 2), "0", "strict", None),
    ("likert-5", "Image A: Good\nImage B: Extremely Poor", "ok", (4, 1), None, "lenient", None),
    ("likert-7", PAIR_OK + "RATING A: Above Average\nRATING B: Average\nBETTER: A", "ok", (5, 4), "0", "strict",
     None),
    ("likert-7", PAIR_OK + "RATING A: below average\nRATING B: Below Average\nBETTER: TIE", "ok", (3, 3), "tie",
     "strict", None),
    ("likert-10", PAIR_OK + "RATING A: Very Good\nRATING B: Good\nBETTER: A", "ok", (8, 7), "0", "strict", None),
    ("likert-10", PAIR_OK + "RATING A: Superb\nRATING B: Good\nBETTER: A", "ok", (None, 7), "0", "lenient", None),
]


@pytest.mark.parametrize("scale, text, status, scores, verdict, how, error", PAIR)
def test_pair_table(scale, text, status, scores, verdict, how, error):
    p = parse_pair(text, scale)
    assert p.status == status, p
    assert p.scores == scores
    assert p.verdict == verdict
    assert p.how == how
    if error is None:
        assert p.error is None
    else:
        assert error in p.error
    assert p.score is None


def test_response_keeps_raw_output_and_how():
    text = ANALYSIS + "RATING: 9"
    r = parse_output(text, "single", "1-10").response(text, input_tokens=10)
    assert (r.status, r.score, r.raw_output, r.input_tokens, r.extra["parse"]) == ("ok", 9, text, 10, "strict")
    assert r.extra["parser"] == PARSER_VERSION
    bad = parse_output("gibberish", "pair", "likert-5").response("gibberish")
    assert bad.status == "parse_error" and bad.raw_output == "gibberish" and "parse" not in bad.extra
    assert bad.extra["parser"] == PARSER_VERSION  # a parse that found nothing is a parse too


@pytest.mark.parametrize("token, value, why", [
    ("7", 7, None), ("-1", -1, None), (".5", 0.5, None), ("7.5", 7.5, None), ("7,5", 7.5, None),
    ("0,85", 0.85, None), ("0,850", 0.85, None), ("10,25", 10.25, None), ("1,0000", 1.0, None),
    ("1,000", None, "ambiguous"), ("12,345", None, "ambiguous"), ("1,000,000", None, "more than one separator"),
    ("1,000.5", None, "more than one separator"), ("1e1", None, "exponent"), ("2E-3", None, "exponent"),
])
def test_read_number(token, value, why):
    got, message = read_number(token)
    assert got == value
    assert (message is None) if why is None else (why in message)


# -- the packaged prompts ask for exactly what the parser reads ------------------------------------------

@pytest.mark.parametrize("scale", PROMPT_SCALES)
@pytest.mark.parametrize("mode", ["single", "pair"])
def test_every_packaged_prompt_states_its_range_and_final_lines(scale, mode):
    from mjbench import PERSPECTIVES
    from mjbench.config import JudgeConfig
    from mjbench.prompts import PromptBook
    from mjbench.scales import get_scale

    book = PromptBook(JudgeConfig(name="p", adapter="openai", scales=[scale]))
    sc = get_scale(scale)
    good = sc.levels[-1] if sc.levels else "1"  # a valid value on every scale
    for perspective in PERSPECTIVES:
        text = book.render(caption='a "red" cube {x}', perspective=perspective, mode=mode, scale=scale)
        assert 'a "red" cube {x}' in text and sc.instructions in text
        if mode == "single":
            assert text.endswith(f"RATING: {sc.placeholder}")
            reply = text.replace(sc.placeholder, good)  # a judge that echoes the prompt with a value
            assert parse_single(reply.splitlines()[-1], scale).how == "strict"
        else:
            assert f"RATING A: {sc.placeholder}\nRATING B: {sc.placeholder}\nBETTER: <A | B | TIE>" in text
            reply = f"RATING A: {good}\nRATING B: {good}\nBETTER: TIE"
            assert parse_pair(reply, scale).status == "ok"


def test_prompt_errors_name_the_key():
    from mjbench.config import JudgeConfig
    from mjbench.errors import ConfigError
    from mjbench.prompts import PromptBook

    with pytest.raises(ConfigError, match=r"prompts.single: template line 1"):
        PromptBook(JudgeConfig(name="p", adapter="openai", scales=["1-10"], prompts={"single": "{{ caption "}))
    book = PromptBook(JudgeConfig(name="p", adapter="openai", scales=["1-10"], prompts={"safety.pair": "{{ captoin }}"}))
    with pytest.raises(ConfigError, match="captoin"):
        book.render(caption="x", perspective="safety", mode="pair", scale="1-10")
    with pytest.raises(ConfigError, match="cannot read"):
        PromptBook(JudgeConfig(name="p", adapter="openai", scales=["1-10"], prompts={"pair": "missing.j2"}))
    a = PromptBook(JudgeConfig(name="p", adapter="openai", scales=["1-10"], prompts={"pair": "A {{ caption }}"})).fingerprint()
    b = PromptBook(JudgeConfig(name="p", adapter="openai", scales=["1-10"], prompts={"pair": "B {{ caption }}"})).fingerprint()
    assert a != b  # a different prompt never reuses cached answers


# --- four gold classes: both_bad and GenAI-Bench's [[A>B]] verdicts --------------------------------------


@pytest.mark.parametrize("text, verdict, how", [
    ("Both are blurry.\nRATING A: 2\nRATING B: 3\nBETTER: BOTH_BAD", "both_bad", "strict"),
    ("Neither matches.\nBETTER: both bad", "both_bad", "lenient"),
    ("BETTER: Both-Bad.", "both_bad", "lenient"),
    ("Better: both", "tie", "lenient"),  # `both` alone stays a tie
    ("Image A has the dog.\n[[A>B]]", "0", "strict"),
    ("[[B>A]]", "1", "strict"),
    ("[[A=B=Good]]", "tie", "strict"),
    ("Both are distorted. [[A=B=Bad]]", "both_bad", "lenient"),
    ("[[A = B]]", "tie", "strict"),
])
def test_pair_verdicts_in_four_classes(text, verdict, how):
    r = parse_pair(text, "1-10")
    assert (r.status, r.verdict, r.how) == ("ok", verdict, how)


def test_conflicting_four_class_verdicts_are_ambiguous():
    r = parse_pair("[[A=B=Bad]]\nBETTER: A", "1-10")
    assert r.status == "parse_error" and r.error == "ambiguous: better given as A and BOTH_BAD"
    r = parse_pair("BETTER: both_bad or A", "1-10")
    assert r.status == "parse_error" and r.error.startswith("ambiguous: better given as")


def test_pair_prompt_offers_both_bad_where_the_task_declares_it():
    from mjbench.config import JudgeConfig
    from mjbench.prompts import PromptBook

    book = PromptBook(JudgeConfig(name="p", adapter="openai", scales=["1-10"]))
    three = book.render(caption="a cat", perspective="alignment", mode="pair", scale="1-10")
    assert three.endswith("BETTER: <A | B | TIE>") and "BOTH_BAD" not in three
    assert book.render(caption="a cat", perspective="alignment", mode="pair", scale="1-10",
                       labels=["0", "1", "tie"]) == three
    four = book.render(caption="a cat", perspective="alignment", mode="pair", scale="1-10",
                       labels=["0", "1", "tie", "both_bad"])
    assert four.endswith("BETTER: <A | B | TIE | BOTH_BAD>")
    assert "TIE if both are equally good, or BOTH_BAD if both are bad" in four
    # what the prompt asks for, the parser reads back
    assert parse_pair("ok\nRATING A: 2\nRATING B: 2\nBETTER: BOTH_BAD", "1-10").verdict == "both_bad"
