"""Images end to end on pictures the tests draw and a tiny random open_clip model: loading with
corrupt files, embedding cache hits and misses, concept proposal through the fake LLM server,
rescoring without re-embedding, programs over scores through the Workbench, baselines, metrics."""
import io
import json
import pickle
import re

import alchemist_magics  # noqa: F401  (first: sets OMP_WAIT_POLICY=PASSIVE before torch loads)
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageDraw

import open_clip
from open_clip.model import CLIPTextCfg, CLIPVisionCfg

from alchemist_magics import TaskSpec, Workbench
from alchemist_magics.data import DataError
from alchemist_magics.images import (ClipModel, ConceptError, concept_scores, concept_table, embed_images,
                                     embed_paths, generate_score_programs, group_metrics, group_prompting,
                                     load_image_folder, load_image_table, parse_concepts, pick_device,
                                     propose_concepts, scores_dataset, zero_shot_clip)
from alchemist_magics.images.preprocess import BatchPreprocess
from alchemist_magics.llm import PromptTemplates

CLASSES = ["square", "circle"]
BACKGROUNDS = {"water": (40, 70, 200), "land": (60, 160, 60)}
TASK = TaskSpec("shapes", "Is the object in the image a square or a circle?", CLASSES)


def tiny_model(seed=0):
    """A randomly initialised open_clip CLIP small enough to run in milliseconds."""
    torch.manual_seed(seed)
    return open_clip.CLIP(embed_dim=16,
                          vision_cfg=CLIPVisionCfg(layers=1, width=32, head_width=16, patch_size=8, image_size=32),
                          text_cfg=CLIPTextCfg(context_length=16, vocab_size=49408, width=32, heads=2, layers=1))


class CountingClip(ClipModel):
    """Counts the images the vision tower sees."""

    images_seen = 0

    def encode_images(self, pixels):
        self.images_seen += len(pixels)
        return super().encode_images(pixels)


@pytest.fixture(scope="module")
def clip():
    return CountingClip(tiny_model(), open_clip.image_transform(32, is_train=False), device="cpu")


def draw(shape, background, seed):
    """A coloured shape on a coloured background, slightly jittered so every file differs."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (40, 40), tuple(int(c + rng.integers(-20, 20)) for c in BACKGROUNDS[background]))
    pen = ImageDraw.Draw(image)
    x, y = rng.integers(4, 12, 2)
    box = (int(x), int(y), int(x) + 22, int(y) + 22)
    (pen.rectangle if shape == "square" else pen.ellipse)(box, fill=(230, 200, 40))
    return image


def make_rows(n_per_class=12, seed=0):
    """(class, background) rows; 5 of 6 squares on water and circles on land (a spurious cue)."""
    rows = []
    for c, shape in enumerate(CLASSES):
        usual = "water" if shape == "square" else "land"
        other = "land" if usual == "water" else "water"
        rows += [(shape, usual if i % 6 else other) for i in range(n_per_class)]
    return rows


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    table = []
    for i, (shape, background) in enumerate(make_rows()):
        path = root / shape / f"{i:03d}_{background}.png"
        path.parent.mkdir(exist_ok=True)
        draw(shape, background, i).save(path)
        table.append({"path": f"{shape}/{path.name}", "label": shape, "group": f"{shape}/{background}"})
    (root / "circle" / "corrupt.png").write_bytes(b"these bytes are not a PNG")
    (root / "square" / "notes.txt").write_text("not an image suffix: ignored")
    pd.DataFrame(table).to_csv(root / "images.csv", index=False)
    return root


def truncated_jpeg(path):
    """A JPEG cut short: its header reads fine, decoding it fails."""
    noise = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) * 6 // 10])


# -- data ------------------------------------------------------------------------------------
def test_folder_loading_skips_and_reports_corrupt_files(folder):
    with pytest.warns(UserWarning, match="skipped 1 unreadable image"):
        images = load_image_folder(folder)
    assert images.classes == ["circle", "square"]  # sorted sub-folders
    assert len(images) == 24 and (images.labels == 0).sum() == 12
    (path, reason), = images.skipped
    assert path.endswith("corrupt.png") and "cannot identify image" in reason
    assert all(p.endswith(".png") for p in images.paths)
    with pytest.warns(UserWarning, match="skipped 1"):
        ordered = load_image_folder(folder, classes=CLASSES)  # a given class order is kept
    assert ordered.labels[ordered.paths.index(str(folder / "square" / "000_land.png"))] == 0
    with pytest.raises(DataError, match=r"class folder\(s\) \['bird'\] not in"):
        load_image_folder(folder, classes=["bird", "circle"])


def test_table_loading_with_labels_groups_and_relative_paths(folder):
    with pytest.warns(UserWarning, match="skipped"):
        broken = load_image_table(pd.DataFrame({"path": [str(folder / "circle" / "corrupt.png"),
                                                         str(folder / "nope.png")] + [str(folder / "square" / "000_land.png")]}))
    assert [why for _, why in broken.skipped][1] == "no such file" and len(broken) == 1
    images = load_image_table(folder / "images.csv", label_column="label", classes=CLASSES, group_column="group")
    assert len(images) == 24 and images.skipped == []
    assert images.paths[0] == str(folder / "square" / "000_land.png")  # resolved against the CSV's folder
    assert images.labels.tolist() == [0] * 12 + [1] * 12
    assert sorted(set(images.groups)) == ["circle/land", "circle/water", "square/land", "square/water"]
    assert images.frame.columns.tolist() == ["path", "label", "group"]
    with pytest.raises(DataError, match=r"column\(s\) \['klass'\] not in the table"):
        load_image_table(folder / "images.csv", label_column="klass")


# -- embeddings ------------------------------------------------------------------------------
def test_embed_paths_matches_the_raw_forward_row_for_row(folder, clip, tmp_path):
    bad = tmp_path / "bad.jpg"
    truncated_jpeg(bad)
    paths = [str(p) for p in sorted((folder / "square").glob("*.png"))[:5]]
    paths.insert(2, str(bad))
    vectors, failures = embed_paths(paths, clip, batch_size=2, workers=2)
    assert list(failures) == [2] and "truncated" in failures[2]
    assert np.isnan(vectors[2]).all() and np.isfinite(np.delete(vectors, 2, axis=0)).all()
    good = [p for p in paths if p != str(bad)]
    with torch.no_grad():
        pixels = torch.stack([clip.preprocess(Image.open(p).convert("RGB")) for p in good])
        direct = torch.nn.functional.normalize(clip.model.encode_image(pixels), dim=-1).numpy()
    np.testing.assert_allclose(np.delete(vectors, 2, axis=0), direct, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(direct, axis=1), 1, atol=1e-5)


def test_batch_preprocess_equals_open_clips_per_image_transform(folder, tmp_path):
    images = [Image.open(p) for p in sorted((folder / "square").glob("*.png"))[:3]]
    images += [draw("circle", "land", 5).convert("L"), draw("circle", "water", 6).convert("RGBA"),
               draw("square", "land", 7).resize((64, 48)), draw("square", "water", 8).resize((32, 32))]
    for preprocess in (open_clip.image_transform(32, is_train=False),
                       open_clip.image_transform((24, 32), is_train=False, resize_mode="squash")):
        batched = BatchPreprocess.of(preprocess)
        buffer = batched.empty(len(images))
        for row, image in enumerate(images):
            batched.fill(buffer, row, image)
        expected = torch.stack([preprocess(image.convert("RGB")) for image in images])
        assert batched.to_tensor(buffer).shape == expected.shape
        torch.testing.assert_close(batched.to_tensor(buffer), expected, rtol=0, atol=0)  # the same pixels, bit for bit
    custom = open_clip.image_transform(32, is_train=False)
    custom.transforms.insert(0, lambda image: image.rotate(90))  # unknown step: keep the per-image transform
    assert BatchPreprocess.of(custom) is None and BatchPreprocess.of(lambda image: image) is None
    slow = ClipModel(tiny_model(), custom, device="cpu")
    assert slow.batch_preprocess is None
    paths = [str(p) for p in sorted((folder / "circle").glob("*.png"))[:4]]
    vectors, failures = embed_paths(paths, slow, batch_size=3, workers=1)
    rotated = torch.stack([custom(Image.open(p).convert("RGB")) for p in paths])
    np.testing.assert_allclose(vectors, slow.encode_images(rotated), atol=1e-6)
    assert failures == {}


def test_batch_load_decodes_jpegs_like_pil_and_reports_bad_files(tmp_path):
    preprocess = open_clip.image_transform(32, is_train=False)
    batched = BatchPreprocess.of(preprocess)
    base = draw("circle", "water", 3).resize((48, 40))
    variants = {"420.jpg": ("RGB", {"quality": 90}), "444.jpg": ("RGB", {"subsampling": 0}),
                "422.jpg": ("RGB", {"subsampling": 1}), "progressive.jpg": ("RGB", {"progressive": True}),
                "gray.jpg": ("L", {}), "cmyk.jpg": ("CMYK", {}), "plain.png": ("RGB", {})}
    paths = []
    for name, (mode, options) in variants.items():
        base.convert(mode).save(tmp_path / name, **options)
        paths.append(str(tmp_path / name))
    base.resize((32, 32)).save(tmp_path / "exact.jpg")  # already the model's size: no resize step
    truncated_jpeg(tmp_path / "bad.jpg")
    paths[3:3] = [str(tmp_path / "exact.jpg"), str(tmp_path / "bad.jpg"), str(tmp_path / "missing.jpg")]
    pixels, ok, errors = batched.load(paths)
    assert ok == [0, 1, 2, 3, 6, 7, 8, 9] and sorted(errors) == [4, 5]
    assert "truncated" in errors[4] and "FileNotFoundError" in errors[5]
    expected = torch.stack([preprocess(Image.open(paths[i]).convert("RGB")) for i in ok])
    torch.testing.assert_close(pixels, expected, rtol=0, atol=0)  # torchvision's decode = PIL's, bit for bit


def test_embed_paths_on_cpu_splits_and_restores_torch_threads(folder, clip):
    seen = []
    original = clip.encode_images
    clip.encode_images = lambda pixels: seen.append(torch.get_num_threads()) or original(pixels)
    before = torch.get_num_threads()
    try:
        paths = [str(p) for p in sorted((folder / "circle").glob("0*.png"))]
        vectors, failures = embed_paths(paths, clip, batch_size=3, workers=2)
    finally:
        del clip.encode_images
    assert len(seen) == -(-len(paths) // 3) and set(seen) == {max(1, before // 2)}
    assert torch.get_num_threads() == before and failures == {} and np.isfinite(vectors).all()


def test_embedding_cache_hits_misses_and_decode_failures(folder, clip, tmp_path):
    images = load_image_table(folder / "images.csv", label_column="label", classes=CLASSES, group_column="group")
    cache = tmp_path / "clip-cache"
    before = clip.images_seen
    first = embed_images(images, clip, cache_dir=cache, batch_size=5, progress=False)
    assert (first.embedded, first.cached, clip.images_seen - before) == (24, 0, 24)
    before = clip.images_seen
    second = embed_images(images, clip, cache_dir=cache, batch_size=5, progress=False)
    assert (second.embedded, second.cached, clip.images_seen - before) == (0, 24, 0)  # nothing embedded again
    np.testing.assert_array_equal(first.vectors, second.vectors)
    # one new image, one byte-identical copy of a cached one, one that fails to decode
    copy, bad = tmp_path / "copy.png", tmp_path / "bad.jpg"
    copy.write_bytes((folder / images.paths[3]).read_bytes())
    truncated_jpeg(bad)
    draw("circle", "water", 999).save(tmp_path / "new.png")
    more = load_image_table(pd.DataFrame({"path": images.paths + [str(copy), str(bad), str(tmp_path / "new.png")],
                                          "group": list(images.groups) + ["x", "y", "z"]}), group_column="group")
    before = clip.images_seen
    with pytest.warns(UserWarning, match="1 image\\(s\\) failed to decode"):
        third = embed_images(more, clip, cache_dir=cache, progress=False)
    assert (third.embedded, clip.images_seen - before, third.cached) == (1, 1, 25)
    assert len(third) == 26 and third.images.paths[-1].endswith("new.png") and list(third.images.groups[-2:]) == ["x", "z"]
    (path, reason), = third.failed
    assert path == str(bad) and "truncated" in reason and third.images.skipped == third.failed
    np.testing.assert_array_equal(third.vectors[24], first.vectors[3])  # the copy reuses the cached row
    other = ClipModel(tiny_model(seed=1), clip.preprocess, clip.tokenizer, device="cpu")
    assert other.identity != clip.identity
    assert embed_images(images, other, cache_dir=cache, progress=False).embedded == 24  # another model misses


def test_clip_model_pickles_and_picks_a_device(clip, monkeypatch):
    clone = pickle.loads(pickle.dumps(clip))
    assert clone.identity == clip.identity
    pixels = torch.zeros(2, 3, 32, 32)
    np.testing.assert_allclose(clone.encode_images(pixels), clip.encode_images(pixels), atol=1e-6)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device().type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device().type == "cuda" and pick_device("cpu").type == "cpu"


# -- loading real weights, up to the download -------------------------------------------------
def test_load_checks_names_tags_and_checkpoint_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="CLIP checkpoint .*missing.pt does not exist"):
        ClipModel.load("ViT-B-32", str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="unknown open_clip model 'ViT-Q-99'"):
        ClipModel.load("ViT-Q-99", "openai")
    with pytest.raises(ValueError, match="ViT-B-32 has no pretrained tag 'laion9b'; its tags: .*'openai'"):
        ClipModel.load("ViT-B-32", "laion9b")


@pytest.fixture
def fake_create(monkeypatch):
    """open_clip's loader replaced by a recorder that returns the tiny model (no download)."""
    calls = []

    def create(name, pretrained=None, **kwargs):
        calls.append({"name": name, "pretrained": pretrained, **kwargs})
        return tiny_model(), None, open_clip.image_transform(32, is_train=False)

    monkeypatch.setattr(open_clip, "create_model_and_transforms", create)
    return calls


def test_load_passes_the_pretrained_tag_and_checkpoint_through(fake_create, tmp_path):
    clip = ClipModel.load("ViT-B-32", "laion2b_s34b_b79k", device="cpu", cache_dir=tmp_path / "weights")
    assert fake_create[-1] == {"name": "ViT-B-32", "pretrained": "laion2b_s34b_b79k", "device": "cpu",
                               "cache_dir": str(tmp_path / "weights")}
    assert clip.identity == "open_clip:ViT-B-32:laion2b_s34b_b79k"
    clone = pickle.loads(pickle.dumps(clip))  # travels as its name and tag, reloaded on arrival
    assert len(fake_create) == 2 and fake_create[-1]["pretrained"] == "laion2b_s34b_b79k"
    assert clone.identity == clip.identity
    checkpoint = tmp_path / "tuned.pt"
    torch.save(tiny_model().state_dict(), checkpoint)
    local = ClipModel.load("ViT-B-32", str(checkpoint), device="cpu")
    assert fake_create[-1]["pretrained"] == str(checkpoint)
    assert local.identity.startswith("open_clip:ViT-B-32:file-sha256:")
    torch.save(tiny_model(seed=3).state_dict(), checkpoint)  # new weights, same path: a new cache key
    assert ClipModel.load("ViT-B-32", str(checkpoint), device="cpu").identity != local.identity


# -- concepts --------------------------------------------------------------------------------
CONCEPT_REPLY = """Sure! Here are the concepts:
```json
{"concepts": [
  {"feature": "outline", "classes": {"square": "straight edges and sharp corners", "circle": "a smooth round outline"}},
  {"feature": "Corner count", "classes": {"SQUARE": ["four corners", "right angles"], "Circle": "no corners at all"}},
  {"feature": "outline", "classes": {"square": "Straight  edges and sharp corners", "triangle": "three sides"}},
  {"feature": "background", "classes": {"square": "blue water behind the shape", "circle": "green grass behind the shape"}},
]}
```
Hope this helps."""


def test_parse_concepts_handles_fences_case_lists_duplicates_and_unknown_classes():
    table, notes = parse_concepts(CONCEPT_REPLY, CLASSES)
    assert table.columns.tolist() == ["column", "feature", "class", "concept"]
    assert table["column"].tolist() == ["outline_square", "outline_circle", "corner_count_square",
                                        "corner_count_circle", "background_square", "background_circle"]
    assert table.loc[2, "concept"] == "four corners, right angles" and table.loc[3, "class"] == "circle"
    assert "ignored a description for unknown class 'triangle'" in notes
    assert "dropped 1 empty or repeated concept(s)" in notes
    # a bare dict of feature -> {class: description}, with junk around and a trailing comma
    bare, _ = parse_concepts('ok: {"colour": {"square": "a yellow square", "circle": "a yellow disc",},} bye', CLASSES)
    assert bare["concept"].tolist() == ["a yellow square", "a yellow disc"]
    listed, _ = parse_concepts('["four corners", "round"]', CLASSES)
    assert listed["column"].tolist() == ["four_corners", "round"] and listed["class"].isna().all()
    assert len(parse_concepts("I cannot help with that.", CLASSES)[0]) == 0


def test_concept_table_identifiers_and_errors():
    table = concept_table(["2 wheels!", "class", "2 wheels!!", "a red roof"])
    assert table["column"].tolist() == ["c_2_wheels", "c_class", "c_2_wheels_2", "a_red_roof"]
    assert concept_table({"roof": "a red roof", "door": "a door"})["column"].tolist() == ["roof", "door"]
    with pytest.raises(ConceptError, match="'red roof' is not a Python identifier; rename it .*'red_roof'"):
        concept_table([{"column": "red roof", "concept": "a red roof"}])
    with pytest.raises(ConceptError, match=r"\['roof'\] repeat"):
        concept_table([{"column": "roof", "concept": "a"}, {"column": "roof", "concept": "b"}])


def test_propose_concepts_through_the_fake_server(make_client, fake_server):
    fake_server.push({"content": CONCEPT_REPLY})
    client = make_client()
    table, completion = propose_concepts(TASK, client)
    assert len(table) == 6 and completion.ok and not completion.cached
    prompt = fake_server.requests[0]["messages"][1]["content"]
    assert "square, circle" in prompt and "visual primitive concepts" in prompt and '"circle": "<how it looks' in prompt
    assert client.meter.spent_usd > 0 and client.meter.records[0].purpose == "concepts"
    again, repeat = propose_concepts(TASK, client)  # served from the cache: no request, $0
    assert repeat.cached and fake_server.request_count == 1 and again.equals(table)
    custom = PromptTemplates(concepts="List concepts for $class_list as JSON. $mission $supplementary $class_slots $n_features")
    fake_server.push({"content": CONCEPT_REPLY})
    propose_concepts(TASK, client, templates=custom)
    assert fake_server.requests[-1]["messages"][1]["content"].startswith("List concepts for square, circle as JSON.")


def test_a_reply_without_concepts_is_retried_then_a_clear_error(make_client, fake_server):
    fake_server.push(*[{"content": "Sorry, I only describe birds."}] * 3)
    with pytest.raises(ConceptError, match="no concepts from gpt-4o: invalid: reply holds no concepts as JSON"):
        propose_concepts(TASK, make_client(max_attempts=3))
    assert fake_server.request_count == 3


# -- scores, programs, label model -----------------------------------------------------------
@pytest.fixture(scope="module")
def embedded(folder, clip, tmp_path_factory):
    images = load_image_table(folder / "images.csv", label_column="label", classes=CLASSES, group_column="group")
    return embed_images(images, clip, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)


def test_rescoring_is_one_product_and_never_reembeds(embedded, clip):
    concepts, _ = parse_concepts(CONCEPT_REPLY, CLASSES)
    before = clip.images_seen
    scores = concept_scores(embedded, concepts, clip)
    texts = clip.encode_texts([f"an image of {c}" for c in concepts["concept"]])
    np.testing.assert_allclose(scores.to_numpy(), embedded.vectors @ texts.T, atol=1e-6)
    assert scores.columns.tolist() == concepts["column"].tolist()
    assert scores.attrs["concepts"][0]["concept"] == "straight edges and sharp corners"
    edited = pd.concat([concepts.drop(index=5), pd.DataFrame([{"concept": "a yellow shape"}])], ignore_index=True)
    rescored = concept_scores(embedded, edited, clip)
    assert clip.images_seen == before  # no image went through the vision tower again
    assert rescored.columns[-1] == "a_yellow_shape" and "background_circle" not in rescored
    np.testing.assert_allclose(rescored.iloc[:, :5].to_numpy(), scores.iloc[:, :5].to_numpy(), atol=1e-6)
    with pytest.raises(ConceptError, match="at least 2 concepts"):
        concept_scores(embedded, ["only one"], clip)


def median_in_prompt(prompt, column):
    """The p50 the prompt's score table shows for ``column`` (what an LLM would threshold at)."""
    return float(re.search(rf"x\.{column}: .*p50 ([-0-9.]+)", prompt).group(1))


def _program_reply(body):
    """The fake LLM thresholds one score at the median the prompt shows; its code depends on the
    strategy it was given, so two kinds of program come back."""
    prompt = body["messages"][1]["content"]
    if "negative evidence" in prompt.split("Approach for this function:")[1].split("\n")[0]:
        code = (f"def label_function(x):\n"
                f"    return 'CIRCLE ' if x.corner_count_circle > {median_in_prompt(prompt, 'corner_count_circle')} else -1\n")
    else:
        code = f"def label_function(x):\n    return 0 if x.outline_square > {median_in_prompt(prompt, 'outline_square')} else 1\n"
    return {"content": f"```python\n{code}```"}


def test_programs_over_scores_through_the_workbench(embedded, clip, make_client, fake_server, tmp_path):
    concepts, _ = parse_concepts(CONCEPT_REPLY, CLASSES)
    scores = concept_scores(embedded, concepts, clip)
    fake_server.responder = _program_reply
    result = generate_score_programs(TASK, scores, n=6, client=make_client(), store=tmp_path)
    prompt = fake_server.requests[0]["messages"][1]["content"]
    p10, p50, p90 = np.percentile(scores["outline_square"], [10, 50, 90])
    assert (f'- x.outline_square: "straight edges and sharp corners"; feature: outline; typical of square '
            f"(p10 {p10:.3f}, p50 {p50:.3f}, p90 {p90:.3f})") in prompt
    assert "If the example is circle, the function returns 1." in prompt and "def label_function(x):" in prompt
    # six requests, two distinct programs: the other four are near-duplicates and refused
    assert len(result.programs) == 2 and [f.reason for f in result.failures].count("duplicate") == 4
    assert result.programs[0].provenance["strategy"].startswith("contrast")

    dataset = scores_dataset(scores, embedded)
    assert dataset.ids == embedded.images.paths and dataset.labels.tolist() == embedded.images.labels.tolist()
    bench = Workbench(TASK, dataset, dataset, root=tmp_path / "wb", workers=1)
    assert bench.add_all(result.programs) == 2, bench.rejected
    bench.apply(progress=False)
    L = bench.matrix("train")
    expect_outline = np.where(scores["outline_square"] > median_in_prompt(prompt, "outline_square"), 0, 1)
    expect_corner = np.where(scores["corner_count_circle"] > median_in_prompt(prompt, "corner_count_circle"), 1, -1)
    assert 0 < expect_outline.sum() < 24 and (expect_corner == 1).any()  # the programs do vote both ways
    np.testing.assert_array_equal(L, np.stack([expect_outline, expect_corner], axis=1).astype(np.int8))
    bench.fit()
    predictions = bench.predict("train", uncovered="prior")
    assert predictions.shape == (24,) and set(predictions) <= {0, 1}
    metrics = group_metrics(dataset.labels, predictions, embedded.images.groups)
    assert metrics.accuracy == pytest.approx((predictions == dataset.labels).mean())
    assert metrics.per_group["n"].sum() == 24


def test_scores_dataset_checks_its_input(embedded, clip):
    scores = concept_scores(embedded, ["a square", "a circle"], clip)
    with pytest.raises(DataError, match="23 score rows for 24 images"):
        scores_dataset(scores.iloc[:-1], embedded)
    with pytest.raises(DataError, match=r"\['a square'\] are not Python identifiers"):
        scores_dataset(scores.rename(columns={"a_square": "a square"}), embedded)


# -- baselines and metrics -------------------------------------------------------------------
def test_zero_shot_and_group_prompting(embedded, clip):
    predicted = zero_shot_clip(embedded, clip, CLASSES)
    prompts = clip.encode_texts(["an image of a square", "an image of a circle"])
    np.testing.assert_array_equal(predicted, (embedded.vectors @ prompts.T).argmax(axis=1))
    grouped = group_prompting(embedded, clip, CLASSES, ["on water", "on land"])
    texts = clip.encode_texts([f"an image of a {c} {a}" for c in CLASSES for a in ("on water", "on land")])
    best = (embedded.vectors @ texts.T).argmax(axis=1) // 2  # prompts 0,1 are squares, 2,3 circles
    np.testing.assert_array_equal(grouped, best)
    with pytest.raises(ValueError, match="group attributes in words"):
        group_prompting(embedded, clip, CLASSES, [])


def test_group_metrics_on_a_hand_checked_case():
    y = [0, 0, 0, 0, 1, 1, 1, 1, -1]
    pred = [0, 0, 0, 1, 1, -1, 1, 0, 0]  # -1 counts as wrong; the unlabeled last row is ignored
    groups = ["a", "a", "a", "b", "c", "c", "d", "d", "a"]
    metrics = group_metrics(y, pred, groups)
    assert metrics.accuracy == pytest.approx(5 / 8)
    assert metrics.per_group["accuracy"].to_dict() == {"a": 1.0, "b": 0.0, "c": 0.5, "d": 0.5}
    assert metrics.per_group["n"].to_dict() == {"a": 3, "b": 1, "c": 2, "d": 2}
    assert (metrics.worst_group, metrics.worst_group_accuracy, metrics.gap) == ("b", 0.0, pytest.approx(5 / 8))
    assert group_metrics(y, pred).worst_group_accuracy is None
    assert json.dumps(metrics.as_dict())  # plain values
    with pytest.raises(ValueError, match="no row has a gold label"):
        group_metrics([-1], [0])
