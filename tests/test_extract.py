import pytest

from alchemist_magics.programs import check_program, extract_programs

REPLY = '''Sure! Here are some labeling functions for spam detection.

```python
import re
import os  # unused by the functions below: must not leak into them

SPAM_WORDS = ["subscribe", "check out"]
LINK = re.compile(r"https?://")

def _has_any(text, words):
    return any(w in text.lower() for w in words)

def lf_keywords(text):
    """Spam when a spam word appears."""
    return 1 if _has_any(text, SPAM_WORDS) else -1

def lf_link(text):
    return 1 if LINK.search(text) else -1

if __name__ == "__main__":
    print(lf_link("http://x"))
```

A third one, with tildes:

~~~
def lf_short(text):
    return 0 if len(text) < 15 else -1
~~~

```json
{"not": "python"}
```

```python
def broken(text)
    return 1
```
'''


def test_fenced_blocks_split_into_programs():
    programs = extract_programs(REPLY)
    assert [p.name for p in programs] == ["lf_keywords", "lf_link", "lf_short"]
    keywords, link, short = programs
    assert "def _has_any" in keywords.source and "SPAM_WORDS" in keywords.source and "LINK" not in keywords.source
    assert "import re" not in keywords.source and "import os" not in keywords.source
    assert "import re" in link.source and "LINK = re.compile" in link.source and "_has_any" not in link.source
    assert '"""Spam when a spam word appears."""' in keywords.source
    assert all(check_program(p.source).ok for p in programs)
    assert [p.provenance["block"] for p in programs] == [0, 0, 1]


def test_skipped_fragments_have_reasons():
    reasons = [reason for _, reason in extract_programs(REPLY).skipped]
    assert any("top-level statement dropped" in r for r in reasons)
    assert "code block tagged 'json', not Python" in reasons
    assert any(r.startswith("does not parse: line 1") for r in reasons)


def test_no_fences_prose_around_code():
    reply = (
        "You could use this function:\n"
        "import re\n"
        "def is_question(text):\n"
        "    # questions end with ?\n"
        "\n"
        "    return 1 if text.strip().endswith('?') else 0\n"
        "It returns 1 for questions. Hope this helps!\n"
    )
    (program,) = extract_programs(reply, provenance={"model": "m"})
    assert program.name == "is_question" and program.provenance == {"model": "m", "block": 0}
    assert "Hope" not in program.source and "# questions end with ?" in program.source
    assert check_program(program.source).ok


def test_unterminated_fence_duplicates_and_junk():
    reply = "```py\ndef a(x):\n    return 1\n```\n```python\ndef a(x):\n    return 1\n```\n```python\ndef b(x):\n    return 0\n"
    assert [p.name for p in extract_programs(reply)] == ["a", "b"]
    assert list(extract_programs("no code here at all, just words.")) == []
    assert list(extract_programs("")) == []


# -- truncated and messy replies (what a small local model writes) ------------------------------------
COMPLETE = "def lf_link(text):\n    return 1 if 'http' in text else -1\n"


def test_truncated_reply_keeps_every_complete_function_and_drops_the_cut_one():
    reply = ("```python\n" + COMPLETE + "\n\ndef lf_free(text):\n    return 1 if 'free' in text else -1\n\n"
             "def lf_caps(text):\n    if sum(c.isupper() for c in text) > 10:\n        return 1\n")
    programs = extract_programs(reply, truncated=True)
    assert [p.name for p in programs] == ["lf_link", "lf_free"]
    assert any("cut off" in r and "finish_reason=length" in r for r in programs.reasons)
    # Not truncated, the same last function is complete (it returns on its only path).
    assert [p.name for p in extract_programs(reply)] == ["lf_link", "lf_free", "lf_caps"]


def test_function_cut_mid_line_is_never_turned_into_a_shorter_valid_one():
    reply = "```python\n" + COMPLETE + "\ndef lf_money(text):\n    t = text.lower()\n    if '$' in t or 'mon"
    programs = extract_programs(reply, truncated=True)
    assert [p.name for p in programs] == ["lf_link"]
    assert any(r.startswith("does not parse") for r in programs.reasons)
    # Even without the finish_reason, the broken function is not shortened into a valid one.
    assert [p.name for p in extract_programs(reply)] == ["lf_link"]


def test_complete_function_followed_by_cut_example_lines_is_salvaged():
    reply = ("Here you go:\n```python\n" + COMPLETE + "\n# Example usage\nprint(lf_link('http://x'))\n"
             "print(lf_link('hello wor")
    (program,) = extract_programs(reply, truncated=True)
    assert program.name == "lf_link" and check_program(program.source).ok


def test_closed_fence_is_complete_even_when_the_reply_was_cut_later():
    reply = "```python\n" + COMPLETE + "```\n\nThis function checks whether the text contai"
    assert [p.name for p in extract_programs(reply, truncated=True)] == ["lf_link"]


def test_function_that_never_returns_a_value_is_dropped_with_its_reason():
    reply = "```python\ndef lf_nothing(text):\n    x = text.lower()\n    if 'a' in x:\n        pass\n```"
    result = extract_programs(reply)
    assert list(result) == [] and any("never returns a value" in r for r in result.reasons)


def test_syntax_error_reason_is_kept_and_the_other_functions_survive():
    reply = ("```python\ndef lf_a(text):\n    return 1 if 'a' in text else -1\n\ndef lf_bad(text)\n    return 0\n\n"
             "def lf_b(text):\n    return 0 if len(text) < 5 else -1\n```")
    result = extract_programs(reply)
    assert [p.name for p in result] == ["lf_a", "lf_b"]
    assert "does not parse: line 4: expected ':'" in result.reasons


def test_prose_between_functions_is_reported_not_fatal():
    reply = ("```python\ndef lf_a(text):\n    return 1 if 'a' in text else -1\nThis one checks for the letter a.\n"
             "def lf_b(text):\n    return 0 if len(text) < 5 else -1\n```")
    assert [p.name for p in extract_programs(reply)] == ["lf_a", "lf_b"]


@pytest.mark.parametrize("reply", ["```python\n" + "-" * 20000 + "1\n```", "```python\n" + "(" * 5000 + "\n```",
                                   "```python\n" + "[" * 300 + "]" * 300 + "\n```", "\x00" * 10, "```python\nx = '\x00'\n```"])
def test_pathological_replies_never_raise(reply):
    result = extract_programs(reply, truncated=True)
    assert list(result) == []
