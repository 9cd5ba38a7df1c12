"""Program generation, repair, provenance, retrieval, zero-shot and prompts (fake server)."""
import json

import numpy as np

import pytest

from alchemist_magics.llm import (
    CostMeter, Exemplar, ProgramStore, PromptTemplates, RepairRequest, generate_programs, is_near_duplicate,
    repair_examples, repair_programs, select_exemplars, weak_reasons, write_supplementary,
    zero_shot_counterfactual, zero_shot_label,
)
from alchemist_magics.llm.prompts import STRATEGIES, program_messages, zero_shot_messages
from alchemist_magics.llm.retrieval import DocumentRetriever
from alchemist_magics.llm.zero_shot import parse_zero_shot
from alchemist_magics.programs import LabelSpace, Program
from alchemist_magics.task import TaskSpec

TASK = TaskSpec("yt spam", "Is this YouTube comment spam?", ["ham", "spam"])
KEYWORDS = ["subscribe", "check out", "free", "http", "channel", "giveaway", "click", "money", "win", "follow"]


def program_reply(i: int) -> str:
    """A distinct program per i (a different keyword and a different structure)."""
    word = KEYWORDS[i % len(KEYWORDS)]
    checks = "\n".join(f"    if len(text) > {10 * (j + 1)} and text.count('{c}') > {j}:\n        return {j % 2}"
                       for j, c in enumerate("!?.,;:"[: 1 + i % 6]))
    return (f"Sure.\n```python\nimport re\n\ndef label_function(text):\n    \"\"\"Looks for {word}.\"\"\"\n"
            f"    if re.search(r'\\b{word}\\b', text.lower()):\n        return 1\n{checks}\n    return -1\n```\n")


def source_of(i: int) -> str:
    return program_reply(i).split("```python\n")[1].split("```")[0]


def numbered_responder(body):
    # The sample index is not sent; the strategy line in the prompt tells requests apart.
    prompt = body["messages"][-1]["content"]
    i = next(k for k, s in enumerate(STRATEGIES.values()) if f"Approach for this function: {s}" in prompt)
    return {"content": program_reply(i)}


def test_generate_programs_with_provenance_and_store(fake_server, make_client, tmp_path):
    fake_server.responder = numbered_responder
    client = make_client()
    result = generate_programs(TASK, n=4, client=client, store=tmp_path / ".alchemist")
    assert len(result.programs) == 4 and not result.failures
    assert fake_server.request_count == 4
    strategies = [p.provenance["strategy"] for p in result.programs]
    assert strategies == list(STRATEGIES.values())[:4]
    p = result.programs[0]
    assert p.name.startswith("keywords_")
    prov = p.provenance
    assert prov["model"] == "gpt-4o" and prov["parent"] is None and prov["parameters"]["temperature"] == 0.7
    assert prov["prompt"][-1]["content"].endswith("def label_function(text):\n")
    assert "```python" in prov["raw_reply"] and prov["prompt_tokens"] > 0 and prov["cost_usd"] > 0
    assert result.cost_usd == pytest.approx(client.meter.spent_usd)
    assert result.estimate.requests == 4 and result.estimate.worst_case_usd >= result.estimate.expected_usd
    # Files: source + provenance per program, and a manifest in generation order.
    store = ProgramStore(TASK.name, tmp_path / ".alchemist")
    assert [e["id"] for e in store.manifest()] == [q.id for q in result.programs]
    assert (store.folder / "programs" / f"{p.id}.py").read_text().startswith("import re")
    assert json.loads((store.folder / "programs" / f"{p.id}.json").read_text())["provenance"]["strategy"]
    assert [q.source.strip() for q in store.load()] == [q.source.strip() for q in result.programs]
    assert not list(store.folder.rglob("*.tmp"))
    # Re-running the unchanged cell: no network, $0, same programs.
    again = generate_programs(TASK, n=4, client=client)
    assert fake_server.request_count == 4 and again.cache_hits == 4 and again.cost_usd == 0
    assert [q.id for q in again.programs] == [q.id for q in result.programs]


def test_later_requests_are_told_what_earlier_ones_use(fake_server, make_client):
    fake_server.responder = numbered_responder
    generate_programs(TASK, n=3, client=make_client(), existing=[Program(source_of(7))])
    prompts = [b["messages"][-1]["content"] for b in fake_server.requests]
    third = next(p for p in prompts if STRATEGIES["shape"] in p.split("Other functions")[0])
    used = third.split("Other functions already use these approaches")[1]
    assert STRATEGIES["keywords"] in used and STRATEGIES["regex"] in used
    assert "Looks for money" in used  # the existing program, by its docstring


def test_no_code_and_duplicates_are_reported(fake_server, make_client):
    fake_server.responder = lambda body: {"content": program_reply(0)}  # every reply the same program
    fake_server.push({"content": "I cannot write code today."})
    result = generate_programs(TASK, n=3, client=make_client(max_attempts=1))
    reasons = sorted(f.reason for f in result.failures)
    assert len(result.programs) == 1 and reasons == ["duplicate", "invalid"]
    invalid = next(f for f in result.failures if f.reason == "invalid")
    assert "no Python code" in invalid.detail


def test_budget_caps_generation(fake_server, make_client):
    # Replies nearly as long as max_tokens: the budget runs out after a few.
    fake_server.responder = lambda body: {**numbered_responder(body),
                                          "usage": {"prompt_tokens": 300, "completion_tokens": 900}}
    client = make_client(max_tokens=1000, concurrency=1)
    one = client.meter.worst_case_usd("gpt-4o", program_messages(TASK, strategy=STRATEGIES["regex"]), 1000)
    result = generate_programs(TASK, n=5, client=client, budget_usd=1.5 * one)
    assert client.meter.spent_usd <= 1.5 * one
    assert len(result.programs) == 1 and [f.reason for f in result.failures] == ["budget"] * 4
    assert fake_server.request_count == 1
    assert client.meter.budget_usd is None  # the cap applied to that call only


def test_near_duplicate_detection():
    a = "def f(text):\n    '''doc'''\n    if 'free' in text:\n        return 1\n    return -1\n"
    renamed = "def g(s):\n    # comment\n    if 'free' in s:\n        return 1\n    return -1\n"
    other = "import re\ndef f(text):\n    n = len(re.findall(r'[A-Z]', text))\n    return 1 if n > 5 else -1\n"
    assert is_near_duplicate(renamed, [a])
    assert not is_near_duplicate(other, [a])
    assert not is_near_duplicate(a, [])


def test_repair_sets_parent_and_sends_stats_and_rows(fake_server, make_client, tmp_path):
    fake_server.responder = lambda body: {"content": program_reply(5)}
    old = Program(source_of(0), name="keywords_old")
    stats = {"Coverage": 0.4, "Conflicts": 0.5, "Emp. Acc.": 0.55}
    assert weak_reasons(stats) == ["dev accuracy 0.55 < 0.7", "conflicts 0.50 > 0.3"]
    assert weak_reasons({"Emp. Acc.": 0.9, "Faults": 0.2}) == ["faults + invalid outputs 0.20 > 0.05"]
    texts = ["subscribe to me", "nice song", "great video", "free money"]
    wrong, uncovered = repair_examples(texts, [1, 0, 0, 1], [1, 1, -1, -1], ["ham", "spam"])
    assert wrong == [("nice song", "spam", "ham")]
    assert uncovered == [("great video", "ham"), ("free money", "spam")]
    result = repair_programs(TASK, [RepairRequest(old, stats, wrong, uncovered)], client=make_client(),
                             store=tmp_path)
    (new,) = result.programs
    assert new.provenance["parent"] == old.id and new.provenance["repair_stats"] == stats
    prompt = fake_server.requests[0]["messages"][-1]["content"]
    assert old.source.strip() in prompt and "Emp. Acc. 0.55" in prompt
    assert '"nice song" -> returned spam, correct is ham' in prompt and '"free money" (correct: spam)' in prompt
    assert ProgramStore(TASK.name, tmp_path).manifest()[0]["parent"] == old.id


def test_repair_that_changes_nothing_is_rejected(fake_server, make_client):
    fake_server.responder = lambda body: {"content": program_reply(0)}
    old = Program(source_of(0))
    result = repair_programs(TASK, [RepairRequest(old, {"Emp. Acc.": 0.5})], client=make_client())
    assert not result.programs and result.failures[0].reason == "duplicate"


def test_prompt_has_alchemist_parts_in_order():
    task = TaskSpec("t", "Is this SMS spam?", ["ham", "spam"], dataset_description="Text messages.",
                    keywords={"spam": ["prize"]}, rules=["Prizes are spam."])
    user = program_messages(task, strategy="keywords", exemplars=[Exemplar("hi mum", "ham")])[-1]["content"]
    order = ["Dataset description: Text messages.", '"hi mum" -> ham', "spam: 'prize'", "Prizes are spam.",
             "Is this SMS spam?", "returns 0", "returns 1", "returns -1", "def label_function(text):"]
    positions = [user.index(s) for s in order]
    assert positions == sorted(positions)


def test_templates_can_be_overridden(tmp_path):
    (tmp_path / "system.txt").write_text("CUSTOM SYSTEM for $description")
    messages = program_messages(TASK, templates=PromptTemplates(tmp_path, program="Only: $signature"))
    assert messages[0]["content"] == "CUSTOM SYSTEM for Is this YouTube comment spam?\n"
    assert messages[1]["content"] == "Only: def label_function(text):\n"
    with pytest.raises(ValueError, match=r"\$nope"):
        program_messages(TASK, templates=PromptTemplates(program="$nope"))


def test_documents_are_retrieved_into_the_prompt(fake_server, make_client, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "spam.md").write_text("# Spam\n\nYouTube spam comments often ask viewers to subscribe to a channel.\n\n"
                                  "Unrelated paragraph about cooking pasta and tomatoes.")
    (docs / "other.txt").write_text("Bird migration happens in autumn.")
    hits = DocumentRetriever(docs).search("spam subscribe channel", k=2)
    assert hits[0].source == "spam.md" and "subscribe" in hits[0].text
    generate_programs(TASK, n=1, client=make_client(), documents=docs)
    assert "Background from your documents" in fake_server.requests[0]["messages"][-1]["content"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DocumentRetriever(tmp_path / "missing")


def test_select_exemplars():
    texts = ["win money now", "win cash prize", "hello friend", "see you at lunch", "lunch at noon?"]
    labels = [1, 1, 0, 0, 0]
    picked = select_exemplars(texts, labels, ["ham", "spam"], k=1, method="random", seed=3)
    assert [e.label for e in picked] == ["ham", "spam"]
    nearest = select_exemplars(texts, labels, ["ham", "spam"], k=1, method="nearest", query="lunch tomorrow")
    assert "lunch" in nearest[0].text and nearest[1].label == "spam"
    with pytest.raises(ValueError, match="method"):
        select_exemplars(texts, labels, ["ham", "spam"], method="best")


def test_the_llm_prompt_shows_the_words_that_mark_each_class_in_the_labeled_rows(fake_server, make_client):
    import pandas as pd

    from alchemist_magics.data import from_dataframe
    from alchemist_magics.llm.writer import LLMWriter, grounded_task

    rng = np.random.default_rng(0)
    ham = [f"see you at {rng.choice(['lunch', 'home', 'work'])} {rng.choice(['mate', 'dear', 'da'])}" for _ in range(30)]
    spam = [f"{rng.choice(['claim', 'win'])} {rng.choice(['prize', 'cash'])} co uk" for _ in range(10)]
    texts, labels = ham + spam, np.array([0] * 30 + [1] * 10)
    task = grounded_task(TASK, texts, labels, texts * 3)
    assert set(task.keywords) == {"ham", "spam"} and TASK.keywords == {}
    assert {"claim", "prize"} <= set(task.keywords["spam"]) and "see you" in task.keywords["ham"]
    # keys a program would test as substrings and that fire inside other words are not shown
    assert not {"co", "uk", "co uk", "da", "a"} & set(sum(task.keywords.values(), []))
    assert grounded_task(TASK, texts, np.full(40, -1)).keywords == {}  # no labels: nothing to mine
    own = TaskSpec("yt spam", "Is this YouTube comment spam?", ["ham", "spam"], keywords={"spam": ["subscribe"]})
    assert grounded_task(own, texts, labels) is own  # the user's keywords are never replaced
    labeled = from_dataframe(pd.DataFrame({"text": texts, "label": labels}), "text", "label", classes=TASK.classes)
    LLMWriter(make_client()).write(TASK, labeled, texts, 1, seed=0)
    prompt = fake_server.requests[0]["messages"][-1]["content"]
    assert "Indicative keywords:\n- ham: '" in prompt and "'claim'" in prompt.split("Indicative keywords:")[1]
    # numbers are quoted too: shown bare, a small model wrote them back as ints (`500 in text` raises)
    numbers = TaskSpec("t", "Is this spam?", ["ham", "spam"], keywords={"spam": ["500", "claim"]})
    assert "- spam: '500', 'claim'" in program_messages(numbers)[-1]["content"]


def test_two_stage_fills_only_empty_fields(fake_server, make_client):
    info = {"dataset_description": "YouTube comments.", "class_descriptions": {"SPAM": "ads", "other": "x"},
            "keywords": {"spam": ["subscribe"], "ham": ["love"]}, "rules": ["links are spam"]}
    fake_server.push({"content": "here you go"}, {"content": "```json\n" + json.dumps(info) + "\n```"})
    task = TaskSpec("t", "Is this YouTube comment spam?", ["ham", "spam"], rules=["mine"])
    filled, completion = write_supplementary(task, make_client())
    assert completion.ok and completion.failures == ["invalid: reply holds no JSON object"]
    assert filled.dataset_description == "YouTube comments."
    assert filled.class_descriptions == {"spam": "ads"}  # matched case-insensitively, unknown dropped
    assert filled.keywords == {"spam": ["subscribe"], "ham": ["love"]}
    assert filled.rules == ["mine"]  # the user's rules are kept


def test_zero_shot_label_runs_rows_with_cache_and_budget(fake_server, make_client):
    def answer(body):
        text = body["messages"][-1]["content"]
        return {"content": "{'class': 'spam'}" if "free" in text else '{"class": "HAM"}'}

    fake_server.responder = answer
    texts = ["free money", "nice song", "free stuff here", "hello"]
    client = make_client()
    result = zero_shot_label(TASK, texts, client)
    assert result.predictions.tolist() == [1, 0, 1, 0] and result.accuracy([1, 0, 1, 1]) == 0.75
    assert fake_server.requests[0]["temperature"] == 0.0 and result.cost_usd > 0
    sampled = zero_shot_label(TASK, texts, client, sample=2, seed=1)
    assert len(sampled.rows) == 2 and fake_server.request_count == 4  # all from the cache
    capped = zero_shot_label(TASK, [f"row {i}" for i in range(20)], make_client(cache=False), budget_usd=0.0005)
    assert capped.failures.get("budget", 0) > 0 and (capped.predictions[capped.rows >= 0] >= -1).all()


def test_parse_zero_shot():
    labels = LabelSpace(["ham", "spam"])
    assert parse_zero_shot("{'class': 'spam'}", labels) == 1
    assert parse_zero_shot('Answer: {"class": "Ham"}', labels) == 0
    assert parse_zero_shot("This is spam.", labels) == 1
    assert parse_zero_shot("spam or ham, hard to say", labels) == -1


def test_counterfactual_counts_every_row():
    texts = ["a" * 40, "b" * 400]
    cf = zero_shot_counterfactual(TASK, texts, "gpt-3.5-turbo")
    per_row = [sum(len(m["content"]) for m in zero_shot_messages(TASK, t)) for t in texts]
    assert cf["rows"] == 2 and cf["prompt_tokens"] > sum(per_row) / 8
    assert cf["usd"] == pytest.approx((cf["prompt_tokens"] * 0.5 + cf["completion_tokens"] * 1.5) / 1e6)
    with pytest.warns(UserWarning):
        assert zero_shot_counterfactual(TASK, texts, "no-such-model")["usd"] is None


def test_meter_summary_counts_cache_hits():
    meter = CostMeter()
    meter.record("gpt-4o", 1000, 100)
    meter.record("gpt-4o", 1000, 100, cached=True)
    s = meter.summary()
    assert (s["requests"], s["cache_hits"], s["prompt_tokens"]) == (1, 1, 1000)
    assert s["cost_usd"] == pytest.approx(0.0035)


# -- messy replies, several programs per reply, true reasons, dedup by behaviour -----------------------
def test_every_program_of_a_reply_is_considered_and_rejections_keep_their_reason(fake_server, make_client):
    reply = ("Three functions:\n```python\ndef lf_sub(text):\n    return 1 if 'subscribe' in text.lower() else -1\n\n"
             "def lf_http(text):\n    return 1 if 'http' in text.lower() else -1\n\n"
             "def lf_bad(text)\n    return 0\n\n"
             "def lf_os(text):\n    import os\n    return 1 if os.getcwd() else -1\n```")
    fake_server.responder = lambda body: {"content": reply}
    result = generate_programs(TASK, n=1, client=make_client())
    assert sorted(p.provenance["function"] for p in result.programs) == ["lf_http", "lf_sub"]
    details = [f.detail for f in result.rejected]
    assert any("does not parse: line" in d and "expected ':'" in d for d in details)
    assert any(d.startswith("lf_os: fails the program check") and "'os'" in d for d in details)
    assert not result.failures


def test_syntax_error_is_the_reported_reason_not_no_code(fake_server, make_client):
    fake_server.responder = lambda body: {"content": "```python\ndef label_function(text)\n    return 1\n```"}
    result = generate_programs(TASK, n=1, client=make_client(max_attempts=1))
    (failure,) = result.failures
    assert failure.reason == "invalid" and "does not parse: line 1: expected ':'" in failure.detail
    assert "no Python code" not in failure.detail


def test_truncated_reply_gives_its_complete_functions_and_never_a_cut_one(fake_server, make_client):
    reply = ("```python\ndef lf_sub(text):\n    return 1 if 'subscribe' in text.lower() else -1\n\n"
             "def lf_money(text):\n    t = text.lower()\n    if '$' in t:\n        return 1\n")
    fake_server.responder = lambda body: {"content": reply, "finish_reason": "length"}
    client = make_client()
    result = generate_programs(TASK, n=1, client=client)
    (program,) = result.programs
    assert "lf_sub" in program.source and "lf_money" not in program.source
    assert program.provenance["salvaged_from_truncated_reply"] is True
    assert any("cut off" in f.detail for f in result.rejected)
    assert fake_server.request_count == 1  # salvaged, not retried
    again = generate_programs(TASK, n=1, client=client)
    assert again.cache_hits == 1 and [p.id for p in again.programs] == [program.id]
    # Only a cut function: the request fails as truncated, with the reason.
    fake_server.responder = lambda body: {"content": "```python\ndef lf(text):\n    if 'a' in text:\n        return 1\n",
                                          "finish_reason": "length"}
    cut = generate_programs(TASK, n=1, client=make_client(max_attempts=1), first_sample=5)
    assert not cut.programs and cut.failures[0].reason == "truncated" and "cut off" in cut.failures[0].detail


def test_programs_differing_only_in_constants_are_not_duplicates():
    sub = "def f(text):\n    return 1 if 'subscribe' in text.lower() else -1\n"
    http = "def f(text):\n    return 1 if 'http' in text.lower() else -1\n"
    assert not is_near_duplicate(http, [sub])
    assert not is_near_duplicate(sub.replace("-1", "0"), [sub])
    assert is_near_duplicate(sub.replace("text", "s").replace("def f", "def g"), [sub])


def test_four_single_keyword_programs_are_all_kept(fake_server, make_client):
    words = iter(["subscribe", "http", "check out", "free"])
    fake_server.responder = lambda body: {"content": f"```python\ndef lf(text):\n    return 1 if '{next(words)}' in text.lower() else -1\n```"}
    result = generate_programs(TASK, n=4, client=make_client(concurrency=1, adaptive=False))
    assert len(result.programs) == 4 and not result.failures


def test_duplicates_by_output():
    from alchemist_magics.llm.dedup import duplicates_by_output, output_agreement, silent_programs

    rng = np.random.default_rng(0)
    a = np.where(rng.random(1000) < 0.3, 1, -1).astype(np.int8)
    b = a.copy()
    b[np.flatnonzero(a == 1)[:5]] = -1  # same rule, misses 5 of ~300 rows: 98 % agreement
    c = np.where(rng.random(1000) < 0.05, 1, -1).astype(np.int8)  # a rare rule on other rows
    d = np.roll(c, 1)  # just as rare, on different rows: both abstain ~90 %, yet not duplicates
    e = np.full(1000, -1, np.int8)
    f = np.where(a == 1, 0, -1).astype(np.int8)  # same rows, opposite class
    L = np.stack([a, b, c, d, e, f], axis=1)
    dups = duplicates_by_output(L, list("abcdef"))
    assert [(x.name, x.duplicate_of) for x in dups] == [("b", "a")]
    assert 0.95 <= dups[0].agreement < 1 and dups[0].rows == int((a == 1).sum())
    assert output_agreement(c, d)[0] < 0.2 and output_agreement(a, f)[0] == 0.0
    assert silent_programs(L, list("abcdef")) == ["e"]
    assert duplicates_by_output(L, list("abcdef"), threshold=0.999) == []
    assert [x.name for x in duplicates_by_output(np.stack([e, e], 1), ["x", "y"])] == ["y"]


def test_repair_prompt_quotes_exceptions_and_failing_rows(fake_server, make_client):
    from alchemist_magics.llm import repair_evidence
    from alchemist_magics.programs.labels import FAULT, INVALID

    fake_server.responder = lambda body: {"content": program_reply(5)}
    texts = ["subscribe now", "nice song", "great video", "free money", "hello", "so good"]
    codes = np.array([1, FAULT, -1, FAULT, INVALID, 1])
    message = "labeled 2/6 rows, 2 faults (first: NameError: name 'string' is not defined), 1 invalid outputs (first: 0.5)"
    evidence = repair_evidence(texts, [1, 0, 0, 1, 0, 0], codes, ["ham", "spam"], message=message)
    assert evidence["uncovered"] == [("great video", "ham")]  # crashes are not "returns -1"
    assert evidence["wrong"] == [("so good", "spam", "ham")]
    assert evidence["errors"][:2] == [("nice song", "raised NameError: name 'string' is not defined"),
                                      ("free money", "raised NameError: name 'string' is not defined")]
    assert "not a class index" in evidence["errors"][2][1]
    old = Program(source_of(0), name="keywords_old")
    repair_programs(TASK, [RepairRequest(old, {"Emp. Acc.": 0.4}, **evidence)], client=make_client())
    prompt = fake_server.requests[0]["messages"][-1]["content"]
    assert "Rows where it failed" in prompt and "\"nice song\" -> raised NameError: name 'string' is not defined" in prompt
    assert "When run over the data it reported: labeled 2/6 rows, 2 faults" in prompt
    assert prompt.index("Rows it leaves unlabeled") > prompt.index("Rows where it failed")


def test_uninformative_programs_vote_at_the_base_rate():
    from alchemist_magics.llm.dedup import uninformative_programs

    rng = np.random.default_rng(1)
    y = (rng.random(400) < 0.4).astype(int)  # 40 % spam
    precise = np.where((y == 1) & (rng.random(400) < 0.5), 1, -1)
    everywhere = np.where(rng.random(400) < 0.9, 1, -1)  # votes spam on 90 % of rows, at the base rate
    ham_rule = np.where((y == 0) & (rng.random(400) < 0.3), 0, -1)
    rare = np.full(400, -1)
    rare[:3] = 1
    L = np.stack([precise, everywhere, ham_rule, rare], axis=1)
    found = uninformative_programs(L, y, ["precise", "everywhere", "ham_rule", "rare"])
    assert [u.name for u in found] == ["everywhere"]
    assert found[0].label == 1 and abs(found[0].prior - y.mean()) < 1e-9 and found[0].precision < 0.5


def test_uninformative_programs_share_the_guard_test_and_name_inverted_ones():
    from alchemist_magics.aggregate.guard import flag_programs
    from alchemist_magics.llm.dedup import uninformative_programs

    rng = np.random.default_rng(2)
    y = (rng.random(300) < 0.13).astype(int)  # 13 % spam, like sms
    inverted = np.where(y == 1, 0, -1)  # votes ham exactly on the spam rows
    rare_precise = np.full(300, -1)
    rare_precise[np.flatnonzero(y == 0)[:9]] = 0  # right 9 of 9 against an 87 % ham prior: kept
    crossfit = np.where(rng.random(300) < 0.5, 1, -1)  # held-out votes replace an in-sample column
    L = np.stack([inverted, rare_precise, np.where(y == 1, 1, -1)], axis=1)
    found = uninformative_programs(L, y, ["inv", "rare", "insample"], votes={2: crossfit})
    assert [(u.name, u.status) for u in found] == [("inv", "inverted"), ("insample", "not_above_prior")]
    assert found[0].flag.status == flag_programs(L[:, :1], y, 2, ["inv"])[0].status == "inverted"
    assert "significantly below chance" in str(found[0])
