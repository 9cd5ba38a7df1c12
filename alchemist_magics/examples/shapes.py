"""A toy image task that runs anywhere: shapes on backgrounds, and a toy CLIP trained in seconds.

Tutorial 2 and the docs use it when no real CLIP weights or image data set are at hand. It copies
the structure of Waterbirds at toy scale: the class is the object (a **square** or a **circle**),
the background (**water** or **land**) is a spurious cue that goes with the class in most images
(squares on water, circles on land), and the rare groups (a square on land, a circle on water)
are where a model that learned the background fails.

- :func:`make_shapes` writes such a data set as JPEG files and returns its table (path, label,
  group), the form :func:`~alchemist_magics.images.load_image_table` reads.
- :func:`train_toy_clip` trains a tiny open_clip model (2 layers per tower, 32x32 pixels) on
  generated captioned images for a few seconds on a CPU, so that its text and image towers agree
  on a small vocabulary (shapes, colours, corners, outlines, water, grass). Like web-scale
  pre-training, it is biased where it matters: images captioned with a class *name* ("a square")
  mostly show it on its usual background, while captions that *describe* the object ("four
  corners", "a red object") come with either background, as close-up descriptions do. The object's
  colour only leans towards its class (squares yellow to orange, circles orange to red), so no
  cue is perfect.
- :data:`CONCEPTS` is a hand-written concept table about the object only, the kind
  ``propose_concepts`` returns, for use without an LLM.

A toy model shows the workflow, not real-world numbers: for those, load real weights
(``ClipModel.load("ViT-B-32", "laion2b_s34b_b79k")``) and a real data set (e.g. Waterbirds).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

CLASSES = ["square", "circle"]
USUAL_BACKGROUND = {"square": "water", "circle": "land"}
BACKGROUNDS = {"water": (40, 90, 200), "land": (60, 150, 50)}
IMAGE_SIZE = 32

# Object colour as a hue between yellow (0) and red (1): each class leans one way, with overlap.
HUE_RANGE = {"square": (0.0, 0.65), "circle": (0.35, 1.0)}

CONCEPTS = [
    {"feature": "outline", "class": "square", "concept": "straight edges and sharp corners"},
    {"feature": "outline", "class": "circle", "concept": "a smooth round outline"},
    {"feature": "corners", "class": "square", "concept": "four corners"},
    {"feature": "corners", "class": "circle", "concept": "no corners"},
    {"feature": "colour", "class": "square", "concept": "a yellow object"},
    {"feature": "colour", "class": "circle", "concept": "a red object"},
]

_NAMES = {"square": ["a square", "a square shape"], "circle": ["a circle", "a circle shape"]}
_DESCRIPTIONS = {"square": ["a box with four corners", "straight edges and sharp corners"],
                 "circle": ["a round disc with no corners", "a smooth round outline"]}
_BACKGROUND_PHRASES = {"water": ["on blue water", "with water behind it"], "land": ["on green grass", "on land"]}


def _colour(hue: float) -> tuple[int, int, int]:
    """Yellow (230, 210, 40) at hue 0 to red (220, 40, 40) at hue 1."""
    return int(230 - 10 * hue), int(210 - 170 * hue), 40


def draw(shape: str, background: str, hue: float, rng: np.random.Generator, size: int = IMAGE_SIZE):
    """One PIL image: a filled square or circle of the given hue on a jittered background."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), tuple(int(c + rng.integers(-25, 25)) for c in BACKGROUNDS[background]))
    side = int(rng.integers(size * 3 // 8, size * 5 // 8))
    x, y = (int(v) for v in rng.integers(2, size - side - 2, 2))
    pen = ImageDraw.Draw(image)
    (pen.rectangle if shape == "square" else pen.ellipse)((x, y, x + side, y + side), fill=_colour(hue))
    return image


def _sample(rng: np.random.Generator, n: int, spurious: float) -> list[tuple[str, str, float]]:
    """``n`` (shape, background, hue) triples; the usual background with probability ``spurious``."""
    rows = []
    for _ in range(n):
        shape = CLASSES[int(rng.integers(2))]
        usual = USUAL_BACKGROUND[shape]
        background = usual if rng.random() < spurious else next(b for b in BACKGROUNDS if b != usual)
        rows.append((shape, background, float(rng.uniform(*HUE_RANGE[shape]))))
    return rows


def make_shapes(folder: str | Path, n: int = 400, *, spurious: float = 0.9, seed: int = 0) -> pd.DataFrame:
    """Write ``n`` JPEGs under ``folder`` and return their table: ``path``, ``label``, ``group``.

    ``spurious`` is the share of images on their class's usual background; ``group`` is
    ``"<shape> on <background>"``. The same seed writes the same images.
    """
    if not 0 <= spurious <= 1:
        raise ValueError(f"spurious must be a share between 0 and 1, got {spurious}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    table = []
    for i, (shape, background, hue) in enumerate(_sample(rng, n, spurious)):
        path = folder / f"{i:05d}_{shape}_{background}.jpg"
        draw(shape, background, hue, rng).save(path, quality=95)
        table.append({"path": str(path), "label": shape, "group": f"{shape} on {background}"})
    return pd.DataFrame(table)


def _caption(shape: str, background: str, hue: float, named: bool, rng: np.random.Generator) -> str:
    """A short caption: the object (its name, or a description; sometimes with its colour), the
    background, or both."""
    phrase = (_NAMES if named else _DESCRIPTIONS)[shape][int(rng.integers(2))]
    if rng.random() < 0.5:
        phrase = phrase.replace("a ", "a yellow " if hue < 0.5 else "a red ", 1)
    place = _BACKGROUND_PHRASES[background][int(rng.integers(2))]
    return [phrase, f"a photo {place}", f"{phrase} {place}"][int(rng.integers(3))]


def train_toy_clip(n_images: int = 2000, epochs: int = 10, *, seed: int = 0, batch_size: int = 125,
                   spurious: float = 0.85, progress: bool = True):
    """Train a tiny open_clip model on generated captioned images (about 15 s on 2 CPU cores).

    Returns a :class:`~alchemist_magics.images.ClipModel` on the CPU (the model is too small for
    a GPU to help). Half its pre-training images are captioned with the class name and put the
    shape on its usual background with probability ``spurious``, as web images do; the other half
    describe the object and have either background. Same seed, same weights (on one machine).
    """
    import open_clip
    import torch
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg
    from tqdm.auto import tqdm

    from ..images import ClipModel

    rng = np.random.default_rng(seed)
    preprocess = open_clip.image_transform(IMAGE_SIZE, is_train=False)
    named = n_images // 2
    rows = _sample(rng, named, spurious) + _sample(rng, n_images - named, 0.5)
    pixels = torch.stack([preprocess(draw(s, b, h, rng)) for s, b, h in rows])
    captions = [_caption(s, b, h, i < named, rng) for i, (s, b, h) in enumerate(rows)]
    tokenizer = open_clip.SimpleTokenizer(context_length=16)
    tokens = tokenizer(captions)
    caption_ids = torch.as_tensor(pd.factorize(pd.Series(captions))[0])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(
            embed_dim=64,
            vision_cfg=CLIPVisionCfg(layers=2, width=64, head_width=32, patch_size=8, image_size=IMAGE_SIZE),
            text_cfg=CLIPTextCfg(context_length=16, vocab_size=49408, width=64, heads=2, layers=2))
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.1)
        order = torch.Generator().manual_seed(seed)
        steps = epochs * -(-n_images // batch_size)
        with tqdm(total=steps, desc="toy CLIP", disable=not progress, delay=1.0) as bar:
            for _ in range(epochs):
                for batch in torch.randperm(n_images, generator=order).split(batch_size):
                    image_features, text_features, scale = model(pixels[batch], tokens[batch])[:3]
                    logits = scale * image_features @ text_features.t()
                    # images with the same caption are all right answers: soft targets over them
                    same = (caption_ids[batch, None] == caption_ids[None, batch]).float()
                    targets = same / same.sum(dim=1, keepdim=True)
                    loss = (torch.nn.functional.cross_entropy(logits, targets)
                            + torch.nn.functional.cross_entropy(logits.t(), targets)) / 2
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    bar.update()
    return ClipModel(model.eval(), preprocess, tokenizer, device="cpu")
