"""Images: LLM-named visual concepts, CLIP concept scores, and labeling programs over the scores.

From plain Python::

    from alchemist_magics.images import (load_image_folder, ClipModel, embed_images, propose_concepts,
                                         concept_scores, scores_dataset, generate_score_programs)
    images = load_image_folder("birds/")                  # birds/<class>/*.jpg; unreadable files skipped
    clip = ClipModel.load("ViT-B-32", "laion2b_s34b_b79k")
    embeddings = embed_images(images, clip)               # cached on disk: a re-run embeds nothing
    concepts, _ = propose_concepts(task, client)          # an editable DataFrame
    scores = concept_scores(embeddings, concepts, clip)   # one column per concept
    train = scores_dataset(scores, embeddings)            # programs read x.<concept column>

Names load on first use, so importing this package does not import torch.
"""
import importlib

_PUBLIC = {
    "ImageSet": ".data", "load_image_folder": ".data", "load_image_table": ".data",
    "ConceptError": ".concepts", "concept_messages": ".concepts", "concept_table": ".concepts",
    "parse_concepts": ".concepts", "propose_concepts": ".concepts",
    "ClipModel": ".clip", "ImageEmbeddings": ".clip", "embed_images": ".clip", "embed_paths": ".clip",
    "pick_device": ".clip", "EmbeddingCache": ".cache",
    "concept_scores": ".scores", "generate_score_programs": ".scores", "score_program_messages": ".scores",
    "scores_dataset": ".scores",
    "GroupMetrics": ".baselines", "group_metrics": ".baselines", "group_prompting": ".baselines",
    "zero_shot_clip": ".baselines",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name], __name__), name)
    raise AttributeError(f"module 'alchemist_magics.images' has no attribute {name!r}")
