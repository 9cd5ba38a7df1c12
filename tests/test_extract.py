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
