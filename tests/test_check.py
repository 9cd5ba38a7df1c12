import pytest

from alchemist_magics.programs import check_program

GOOD = '''
import re
from collections import Counter
import numpy as np

WORDS = {"subscribe", "channel"}
PATTERN = re.compile(r"check (it )?out")

def _tokens(text):
    return re.findall(r"\\w+", text.lower())

def label(x, threshold=2):
    counts = Counter(_tokens(x))
    if PATTERN.search(x) or sum(counts[w] for w in WORDS) >= threshold:
        return "spam"
    return int(np.sign(len(x) - 10)) if len(x) < 5 else None
'''


def test_good_program_passes_with_its_entry():
    result = check_program(GOOD)
    assert result.ok and result.reasons == [] and result.entry == "label"


@pytest.mark.parametrize("source, reason", [
    ("def f(x):\n    return (\n", "syntax error on line"),
    ("import os\ndef f(x):\n    return 1\n", "import of 'os' is not allowed"),
    ("from subprocess import run\ndef f(x):\n    return 1\n", "import of 'subprocess'"),
    ("import time\ndef f(x):\n    return 1\n", "import of 'time'"),
    ("from . import x\ndef f(x):\n    return 1\n", "relative imports"),
    ("def f(x):\n    return eval(x)\n", "eval() is not allowed"),
    ("def f(x):\n    return open('a').read()\n", "open() is not allowed"),
    ("def f(x):\n    return getattr(x, 'y')\n", "getattr() is not allowed"),
    ("def f(x):\n    return x.__class__\n", "dunder attribute '.__class__'"),
    ("def f(x):\n    return __builtins__\n", "dunder name '__builtins__'"),
    ("import numpy as np\ndef f(x):\n    np.save('a', 1)\n", "attribute '.save'"),
    ("import numpy\ndef f(x):\n    return numpy.fromfile('a')\n", "attribute '.fromfile'"),
    ("from numpy import load\ndef f(x):\n    return 1\n", "importing 'load'"),
    ("import re\ndef f(x):\n    re.search = None\n", "monkeypatching"),
    ("import string\ndef f(x):\n    return '{0.__class__}'.format(x)\n", "dunder names"),
    ("def f(x):\n    return 1\nprint(f('a'))\n", "top-level Expr not allowed"),
    ("def f(x):\n    return 1\n\ndef g(x):\n    return 0\n", "several entry functions (f, g)"),
    ("X = 1\n", "no entry function"),
    ("def f(x, y):\n    return 1\n", "exactly one argument"),
    ("def f():\n    return 1\n", "exactly one argument"),
    ("class A:\n    pass\ndef f(x):\n    return A\n", "ClassDef is not allowed"),
])
def test_rejections_carry_readable_reasons(source, reason):
    result = check_program(source)
    assert not result.ok
    assert any(reason in r for r in result.reasons), result.reasons


def test_helpers_are_not_entries_and_allow_list_is_configurable():
    source = "import time\ndef helper(t):\n    return len(t)\n\ndef entry(t):\n    return 1 if helper(t) > 3 else 0\n"
    assert check_program(source).reasons == [
        "line 1: import of 'time' is not allowed (allowed: collections, datetime, functools, itertools, math, "
        "numpy, re, statistics, string, unicodedata)"
    ]
    result = check_program(source, allowed_imports={"time"})
    assert result.ok and result.entry == "entry"


# -- undefined names and regexes that cannot compile (they fault on every row) ---------------------------
@pytest.mark.parametrize("source, reason", [
    ("def f(text):\n    return 1 if any(c in string.ascii_letters for c in text) else -1\n",
     "line 2: name 'string' is not defined (missing 'import string'?)"),
    ("def f(text):\n    return 1 if re.search('x', text) else -1\n", "name 're' is not defined"),
    ("def f(text):\n    return 1 if text in SPAM_WORDS else -1\n", "line 2: name 'SPAM_WORDS' is not defined"),
    ("def f(text):\n    return helper(text)\n", "name 'helper' is not defined"),
])
def test_undefined_names_are_caught(source, reason):
    result = check_program(source)
    assert not result.ok and any(reason in r for r in result.reasons), result.reasons


def test_names_bound_anywhere_are_not_flagged():
    source = '''
import re as regex
from collections import Counter
LIMIT = 3

def f(text, *rest, **kw):
    words = [w for w in text.split() if (n := len(w)) > 1]
    try:
        total = sum(Counter(words).values())
    except ValueError as err:
        total = len(str(err))
    for i, ch in enumerate(text):
        last = ch
    with_lambda = (lambda y: y + 1)(LIMIT)
    match text:
        case "a" | "b" as letter:
            pass
        case {"k": v, **others}:
            pass
    return 1 if regex.search("x", text) and total > with_lambda else -1
'''
    result = check_program(source)
    assert result.ok, result.reasons


@pytest.mark.parametrize("source", [
    "import re\ndef f(text):\n    return 1 if re.search(r'win (big', text) else -1\n",
    "import re\nP = re.compile('[a-z')\ndef f(text):\n    return 1 if P.search(text) else -1\n",
    "import re\nEX = ['Check out my channel :)', 'win $$$']\nP = re.compile('|'.join(EX))\n"
    "def f(text):\n    return 1 if P.search(text) else -1\n",
    "from re import findall\ndef f(text):\n    return 1 if findall('a{2,1}', text) else -1\n",
    "import re\ndef f(text):\n    return 1 if re.search('(' + 'x', text, re.I) else -1\n",
])
def test_literal_regexes_that_do_not_compile_are_caught(source):
    result = check_program(source)
    assert not result.ok and any("does not compile" in r for r in result.reasons), result.reasons


@pytest.mark.parametrize("source", [
    "import re\ndef f(text):\n    return 1 if re.search(r'win (big)?', text) else -1\n",
    "import re\nEX = ['Check out', 'win']\nP = re.compile('|'.join(re.escape(e) for e in EX))\n"
    "def f(text):\n    return 1 if P.search(text) else -1\n",
    "import re\nP = re.compile('|'.join([re.escape(':)'), 'x']))\ndef f(text):\n    return 1 if P.search(text) else -1\n",
    "import re\nP = re.compile(' a # comment (', re.X)\ndef f(text):\n    return 1 if P.search(text) else -1\n",
    "import re\ndef f(text):\n    p = text[:3]\n    return 1 if re.search(p, 'abc') else -1\n",  # dynamic: left to run time
])
def test_valid_or_dynamic_regexes_pass(source):
    result = check_program(source)
    assert result.ok, result.reasons
