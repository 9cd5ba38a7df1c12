"""Benchmark the image path: concept rescoring and the embedding pipeline.

(a) ``rescore_ms``: 20 new concepts scored over 10,000 cached image embeddings (text tower + one
    matrix product), median of 5 runs, each with concepts the model has not seen.
(b) ``pipeline_vs_raw``: ``embed_paths`` (decode + batch + model) against the raw model forward on
    the same images decoded and preprocessed beforehand (with the model's own per-image
    preprocess): raw seconds / pipeline seconds (1.0 means decoding is fully hidden behind the
    model). Best of ``--repeats`` interleaved rounds each (``pipeline_vs_raw_median`` is the ratio
    of the medians).

    python bench/clip.py                         # tiny random model (CPU-fast)
    python bench/clip.py --arch ViT-B-32         # a random ViT-B-32-sized model (GPU)

Prints a JSON object as its last line.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import alchemist_magics  # noqa: F401  (first: sets OMP_WAIT_POLICY=PASSIVE before torch loads)
import numpy as np
import open_clip
import torch
from open_clip.model import CLIPTextCfg, CLIPVisionCfg
from PIL import Image

from alchemist_magics.images import ClipModel, concept_scores, embed_paths


def tiny_clip(embed_dim: int, image_size: int) -> ClipModel:
    torch.manual_seed(0)
    model = open_clip.CLIP(embed_dim=embed_dim,
                           vision_cfg=CLIPVisionCfg(layers=2, width=64, head_width=32, patch_size=8, image_size=image_size),
                           text_cfg=CLIPTextCfg(context_length=32, vocab_size=49408, width=64, heads=2, layers=2))
    return ClipModel(model, open_clip.image_transform(image_size, is_train=False), device="auto")


def arch_clip(name: str) -> ClipModel:
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=None)
    return ClipModel(model, preprocess, open_clip.get_tokenizer(name), identity=f"random:{name}", device="auto")


def bench_rescore(clip: ClipModel, n_images: int, n_concepts: int, repeats: int = 5) -> float:
    dim = clip.encode_texts(["a"]).shape[1]
    vectors = np.random.default_rng(0).standard_normal((n_images, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    times = []
    for r in range(repeats):
        concepts = [f"concept {r} number {i}" for i in range(n_concepts)]  # new texts: nothing memoised
        start = time.perf_counter()
        concept_scores(vectors, concepts, clip)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def write_images(folder: Path, n: int, size: int) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(str(path))
    return paths


def bench_pipeline(clip: ClipModel, paths: list[str], batch_size: int, workers: int | None, repeats: int) -> dict:
    # the raw side: the model's own per-image preprocess, done beforehand and not timed
    pixels = torch.stack([clip.preprocess(Image.open(p).convert("RGB")) for p in paths])
    batches = list(pixels.split(batch_size))
    clip.encode_images(batches[0])  # warm-up (CUDA context, kernels)
    if clip.device.type == "cuda":
        torch.cuda.synchronize()
    raw, pipeline = [], []
    for _ in range(repeats):  # interleaved, best of each: other load on the machine only ever adds time
        start = time.perf_counter()
        for batch in batches:
            clip.encode_images(batch)  # returns numpy: synchronises with the GPU
        raw.append(time.perf_counter() - start)
        start = time.perf_counter()
        vectors, failures = embed_paths(paths, clip, batch_size=batch_size, workers=workers)
        pipeline.append(time.perf_counter() - start)
        assert not failures and np.isfinite(vectors).all()
    best_raw, best_pipeline = min(raw), min(pipeline)
    return {"raw_s": round(best_raw, 3), "pipeline_s": round(best_pipeline, 3),
            "pipeline_vs_raw": round(best_raw / best_pipeline, 3),
            "pipeline_vs_raw_median": round(statistics.median(raw) / statistics.median(pipeline), 3),
            "raw_images_per_s": round(len(paths) / best_raw, 1), "pipeline_images_per_s": round(len(paths) / best_pipeline, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", help="an open_clip architecture with random weights (default: a tiny model)")
    parser.add_argument("--images", type=int, default=2048, help="test JPEGs (fewer: each timing is short and noisy)")
    parser.add_argument("--image-size", type=int, default=64, help="side of the test JPEGs (and of the tiny model)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="decoding threads (default: usable CPUs)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds of each side (best is reported)")
    args = parser.parse_args()
    clip = arch_clip(args.arch) if args.arch else tiny_clip(512, args.image_size)
    result = {"model": args.arch or "tiny", "device": clip.device.type, "torch_threads": torch.get_num_threads(),
              "rescore_ms": round(bench_rescore(clip, 10_000, 20), 2)}
    with tempfile.TemporaryDirectory() as folder:
        paths = write_images(Path(folder), args.images, args.image_size)
        result.update(bench_pipeline(clip, paths, args.batch_size, args.workers, args.repeats))
    result.update(images=args.images, image_size=args.image_size, batch_size=args.batch_size)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
