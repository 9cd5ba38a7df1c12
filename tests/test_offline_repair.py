"""Offline repair: learned exceptions make a weak program more accurate, the result is an ordinary
checked program with the parent's provenance, and a program with nothing to learn is refused."""
import numpy as np
import pytest

from alchemist_magics import TaskSpec, Workbench
from alchemist_magics.aggregate import program_analysis
from alchemist_magics.synth import Evidence, NothingToLearn, repair_offline, repair_program
from alchemist_magics.programs import LabelSpace, Program, apply_programs, check_program
from alchemist_magics.data import fetch_wrench

TASK = TaskSpec("toy", "spam or ham", ["ham", "spam"])
SONG = Program('def song(text):\n    return 0 if "song" in text.lower() else -1\n')

# "song" means ham, except in comments that promote a channel (spam) or are too vague to tell.
HAM = ["great song", "this song is the best", "best song ever", "song of the year", "what a song"]
SPAM = ["check out my channel song", "subscribe for my new song", "my song on my channel", "check my song out",
        "free song download at my channel"]


def _run(program: Program, texts: list[str]) -> np.ndarray:
    return apply_programs([program], texts, LabelSpace(TASK.classes), progress=False).L[:, 0]


def _accuracy(outputs: np.ndarray, gold: np.ndarray) -> float:
    fired = outputs >= 0
    return float((outputs[fired] == gold[fired]).mean())


def _evidence(texts, gold, program=SONG):
    return Evidence(texts, _run(program, texts), gold, ["dev"] * len(texts))


def test_constructed_case_improves_and_passes_the_check():
    texts, gold = HAM + SPAM, np.array([0] * 5 + [1] * 5)
    fixed = repair_offline(TASK, SONG, _evidence(texts, gold), reasons=["dev accuracy 0.50 < 0.7"])
    assert check_program(fixed.source).ok and check_program(fixed.source).entry == "song_repaired"
    assert "def song(text):" in fixed.source  # the parent is kept verbatim as a helper
    assert _accuracy(_run(SONG, texts), gold) == 0.5
    assert _accuracy(_run(fixed, texts), gold) == 1.0
    # Every spam row says "my": one exception, flipping to spam, explains all five errors.
    (exception,) = fixed.provenance["stats"]["exceptions"]
    assert exception == {"key": "my", "answer": 1, "errors": 5, "rights": 0}
    prov = fixed.provenance
    assert prov["source"] == "offline-repair" and prov["parent"] == SONG.id
    assert prov["reasons"] == ["dev accuracy 0.50 < 0.7"]
    assert prov["stats"]["before"]["dev"] == {"fired": 10, "right": 5}
    assert prov["stats"]["after"]["dev"]["right"] > 5


def test_abstains_when_errors_have_no_single_answer():
    # Three classes; the rows "maybe" marks belong to two other classes, so it abstains there.
    task = TaskSpec("three", "topic", ["music", "spam", "news"])
    texts = ["song maybe", "song maybe again", "song maybe now", "song maybe later", "nice song", "good song", "song"]
    gold = np.array([1, 2, 1, 2, 0, 0, 0])
    fixed = repair_offline(task, SONG, Evidence(texts, np.zeros(7, dtype=int), gold, ["dev"] * 7))
    assert [(e["key"], e["answer"]) for e in fixed.provenance["stats"]["exceptions"]] == [("maybe", -1)]
    assert _run(fixed, texts).tolist() == [-1, -1, -1, -1, 0, 0, 0]


def test_mines_every_dev_row_and_a_bounded_sample_of_the_rest():
    texts = (HAM + SPAM) * 20
    gold = np.array(([0] * 5 + [1] * 5) * 20)
    origin = ["dev"] * 10 + ["train"] * 190
    evidence = Evidence(texts, _run(SONG, texts), gold, origin)
    fixed = repair_offline(TASK, SONG, evidence, max_rows=50)
    assert fixed.provenance["stats"]["learned_from"] == {"dev": 10, "train": 50}
    assert fixed.provenance["stats"]["after"]["train"] == {"fired": 50, "right": 50}
    assert repair_offline(TASK, SONG, evidence, max_rows=50).source == fixed.source  # seeded


def test_names_in_the_parent_do_not_clash():
    parent = Program('import re\n\nEXCEPTIONS = ("x",)\n\n\ndef words_and_pairs(text):\n    return re.findall("song", text)\n\n\n'
                     'def song(text):\n    return 0 if words_and_pairs(text) and EXCEPTIONS[0] not in text else -1\n')
    texts, gold = HAM + SPAM, np.array([0] * 5 + [1] * 5)
    fixed = repair_offline(TASK, parent, _evidence(texts, gold, parent))
    assert check_program(fixed.source).ok
    assert "EXCEPTIONS_2 = {" in fixed.source and "def words_and_pairs_2(text):" in fixed.source
    assert fixed.source.count("import re") == 1
    assert _accuracy(_run(fixed, texts), gold) == 1.0


def test_refuses_when_there_is_nothing_to_learn():
    texts, gold = HAM + SPAM, np.array([0] * 5 + [1] * 5)
    never = Program('def never(text):\n    return 1 if "zebra" in text else -1\n')
    with pytest.raises(NothingToLearn, match="fires on no row with a known label"):
        repair_offline(TASK, never, _evidence(texts, gold, never))
    with pytest.raises(NothingToLearn, match="agrees with all 5 known labels"):
        repair_offline(TASK, SONG, _evidence(HAM, np.zeros(5, dtype=int)))
    # Errors that share no word or phrase: no exception reaches min_support.
    scattered = HAM + ["alpha song", "beta song", "gamma song"]
    with pytest.raises(NothingToLearn, match="no word or phrase marks song's errors"):
        repair_offline(TASK, SONG, _evidence(scattered, np.array([0] * 5 + [1] * 3)), min_support=2)
    # Always wrong, and the right answers split between two classes: nothing left to keep.
    three = TaskSpec("three", "topic", ["music", "spam", "news"])
    hopeless = Evidence(["song one", "song two", "song three", "song four"], [0] * 4, [1, 2, 1, 2], ["dev"] * 4)
    with pytest.raises(NothingToLearn, match="delete it rather than repair it"):
        repair_offline(three, SONG, hopeless)
    with pytest.raises(TypeError, match="text inputs"):
        Evidence([{"text": "song"}], [0], [1], ["dev"])


@pytest.fixture(scope="module")
def youtube():
    return fetch_wrench("youtube", download=False)


HANDWRITTEN = [
    'def check_out(text):\n    return 1 if "check" in text.lower() and "out" in text.lower() else -1\n',
    'def subscribe(text):\n    return 1 if "subscribe" in text.lower() else -1\n',
    'def link(text):\n    return 1 if "http" in text.lower() else -1\n',
    'def short(text):\n    return 0 if len(text.split()) < 5 else -1\n',
    # Deliberately weak: spam comments say "check out my video" as often as ham ones praise it.
    'def video(text):\n    return 0 if "video" in text.lower() else -1\n',
]


def test_repairs_a_weak_program_on_wrench_youtube(youtube, tmp_path):
    task = TaskSpec("youtube", "Is this YouTube comment spam?", youtube["train"].classes)
    bench = Workbench(task, youtube["train"], youtube["valid"], youtube["test"], root=tmp_path, seed=0)
    assert bench.add_all(HANDWRITTEN) == 5
    bench.apply(progress=False)
    bench.fit()
    before = bench.analysis().loc["video", "Emp. Acc."]
    fixed = repair_program(bench, "video")
    assert fixed.provenance["parent"] == bench.programs[4].id
    assert fixed.provenance["reasons"] == [f"dev accuracy {before:.2f} < 0.7"]
    assert fixed.provenance["stats"]["learned_from"]["train"] > 0  # confident label-model labels were used
    assert bench.add(fixed), bench.rejected  # check + smoke test
    bench.apply(progress=False)
    after = bench.analysis().loc["video_repaired", "Emp. Acc."]
    assert before < 0.2 and after > 0.8
    # Held out: the test split played no part in the repair (measured: 0.04 -> 0.61 on 23 rows).
    test = program_analysis(bench.matrix("test"), youtube["test"].labels, names=[p.name for p in bench.programs])
    assert test.loc["video", "Emp. Acc."] < 0.1 and test.loc["video_repaired", "Emp. Acc."] > 0.5


def test_a_program_over_concept_rows_is_repaired_into_one_over_concept_rows():
    from alchemist_magics.programs.rows import make_row_type

    parent = Program('def song_row(x):\n    return 0 if x.proto_ham > 0.5 else -1\n', provenance={"view": "concepts-1"})
    texts, gold = HAM + SPAM, np.array([0] * 5 + [1] * 5)
    Row = make_row_type(["text", "proto_ham"])
    rows = [Row(t, 0.9) for t in texts]  # the parent votes ham everywhere: wrong on the spam rows
    run = lambda p: apply_programs([p], rows, LabelSpace(TASK.classes), progress=False).L[:, 0]  # noqa: E731
    fixed = repair_offline(TASK, parent, Evidence(texts, run(parent), gold, ["dev"] * len(texts)))
    assert fixed.provenance["view"] == "concepts-1" and "def song_row_repaired(x):" in fixed.source
    assert _accuracy(run(fixed), gold) == 1.0  # its exceptions read the row's text
