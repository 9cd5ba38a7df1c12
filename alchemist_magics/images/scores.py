"""Concept scores and the programs written over them.

:func:`concept_scores` is one matrix product of the cached, normalised image embeddings with the
concept text embeddings: adding or editing concepts never re-embeds an image. The result is a
DataFrame with one column per concept (the concept's identifier); ``scores.attrs["concepts"]``
keeps the concept table. :func:`scores_dataset` turns it into a :class:`~alchemist_magics.data.dataset.Dataset`
whose rows reach programs as ``x.<column>``, so programs over scores go through exactly the same
Workbench path (check, sandbox, normalisation, label model) as text programs.
:func:`generate_score_programs` asks the LLM for such programs with the paper's second prompt.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..data.dataset import DataError, Dataset
from ..llm.client import LLMClient, Request
from ..llm.cost import TYPICAL_PROGRAM_REPLY_TOKENS, estimate_requests
from ..llm.generate import DUPLICATE_SIMILARITY, GenerationResult, collect, prepare_request, validate_reply
from ..llm.prompts import DEFAULT_TEMPLATES, PromptTemplates, instructions, signature
from ..llm.provenance import ProgramStore
from ..programs import Program
from ..task import TaskSpec
from .clip import ClipModel, ImageEmbeddings
from .concepts import ConceptError, concept_table
from .data import ImageSet

CONCEPT_TEMPLATE = "an image of {concept}"

# One per request, in turn, so the programs vote on different evidence.
SCORE_STRATEGIES = {
    "contrast": "contrast: for each feature, compare the scores of the competing class descriptions and see which fits better",
    "vote": "a vote: count, per class, the features whose description for that class scores highest",
    "strongest": "one or two of the most telling features only, with thresholds, returning -1 otherwise",
    "average": "the average score of each class's concepts, deciding only when one class leads by a margin",
    "object": "only concepts about the object itself (its parts, shape, colour, texture), ignoring background and surroundings",
    "negative": "negative evidence: concepts that make a class unlikely",
}


def concept_scores(embeddings: ImageEmbeddings | np.ndarray, concepts, clip: ClipModel, *,
                   template: str = CONCEPT_TEMPLATE) -> pd.DataFrame:
    """Cosine similarity of every image with every concept: ``(images, concepts)`` DataFrame.

    Args:
        embeddings: from :func:`~alchemist_magics.images.clip.embed_images` (or a normalised array).
        concepts: a concept table (``propose_concepts`` / ``concept_table``), a list of concept
            texts, or a ``{column: text}`` dict.
        clip: the model that made the embeddings (its text tower embeds the concepts).
        template: how a concept becomes the text CLIP reads; ``{concept}`` is replaced.
    """
    table = concept_table(concepts)
    if len(table) < 2:
        raise ConceptError(f"scoring needs at least 2 concepts, got {len(table)}; add some to the concept table")
    if "{concept}" not in template:
        raise ValueError(f"template {template!r} has no {{concept}} placeholder")
    if isinstance(embeddings, ImageEmbeddings):
        if embeddings.model != clip.identity:
            raise ValueError("these embeddings were made by another model than `clip`; embed with the same ClipModel")
        vectors = embeddings.vectors
    else:
        vectors = np.asarray(embeddings, dtype=np.float32)
    texts = clip.encode_texts([template.replace("{concept}", c) for c in table["concept"]])
    if texts.shape[1] != vectors.shape[1]:
        raise ValueError(f"image embeddings have {vectors.shape[1]} dims, the text tower {texts.shape[1]}: not the same model")
    scores = pd.DataFrame(vectors @ texts.T, columns=table["column"].tolist())
    scores.attrs["concepts"] = table.to_dict("records")
    scores.attrs["template"] = template
    return scores


def scores_dataset(scores: pd.DataFrame, images: ImageSet | ImageEmbeddings, *, name: str | None = None) -> Dataset:
    """A :class:`Dataset` over concept scores (programs read ``x.<column>``), with the images'
    labels and classes; ``ids`` are the image paths."""
    images = images.images if isinstance(images, ImageEmbeddings) else images
    if len(scores) != len(images):
        raise DataError(f"{len(scores)} score rows for {len(images)} images; score the same embeddings")
    columns = [str(c) for c in scores.columns]
    bad = [c for c in columns if not c.isidentifier()]
    if bad:
        raise DataError(f"score column(s) {bad} are not Python identifiers; rename them (see concepts.identifier)")
    if len(columns) < 2:
        raise DataError("programs need at least 2 score columns (one column reaches them as a bare number)")
    frame = scores.reset_index(drop=True).astype(np.float64)
    if not np.isfinite(frame.to_numpy()).all():
        raise DataError("scores contain NaN or infinite values; embed_images drops undecodable images, use its output")
    return Dataset(frame=frame, input_columns=columns,
                   labels=None if images.labels is None else images.labels.copy(),
                   classes=images.classes, ids=list(images.paths), name=name or images.name)


# -- programs over scores --------------------------------------------------------------------
def score_table(scores: pd.DataFrame) -> str:
    """One line per score for the prompt: its name, concept, class, and observed percentiles."""
    described = {r["column"]: r for r in scores.attrs.get("concepts", [])}
    lines = []
    for column in scores.columns:
        record = described.get(column, {})
        about = [f'"{record["concept"]}"' if record.get("concept") else ""]
        if record.get("feature"):
            about.append(f"feature: {record['feature']}")
        if record.get("class"):
            about.append(f"typical of {record['class']}")
        p10, p50, p90 = np.percentile(scores[column].to_numpy(), [10, 50, 90])
        lines.append(f"- x.{column}: {'; '.join(a for a in about if a)} (p10 {p10:.3f}, p50 {p50:.3f}, p90 {p90:.3f})")
    return "\n".join(lines)


def score_program_messages(task: TaskSpec, scores: pd.DataFrame, *, strategy: str | None = None,
                           used: list[str] | None = None, templates: PromptTemplates = DEFAULT_TEMPLATES) -> list[dict]:
    """Chat messages asking for one program over concept scores (template ``score_program.txt``)."""
    mission = ("Write a bug-free and executable function in Python to label an image from its concept scores "
               f"for this task: {task.description}")
    avoid = ("Other functions already use these approaches, so find different evidence:\n"
             + "\n".join(f"- {u}" for u in used) + "\n") if used else ""
    user = templates.render("score_program", mission=mission, score_table=score_table(scores),
                            instructions=instructions(task),
                            strategy=f"Approach for this function: {strategy}.\n" if strategy else "",
                            avoid=avoid, signature=signature("x"))
    return [{"role": "system", "content": templates.render("system", description=task.description)},
            {"role": "user", "content": user}]


def generate_score_programs(task: TaskSpec, scores: pd.DataFrame, n: int = 10, client: LLMClient | None = None, *,
                            existing: list[Program] | None = None, budget_usd: float | None = None,
                            store: ProgramStore | str | Path | None = None,
                            templates: PromptTemplates = DEFAULT_TEMPLATES, temperature: float | None = None,
                            max_tokens: int | None = None, first_sample: int = 0,
                            similarity: float = DUPLICATE_SIMILARITY) -> GenerationResult:
    """Ask for ``n`` programs over concept scores, concurrently (one strategy each).

    Same cache, cost meter, budget, validation, near-duplicate rejection and provenance as
    :func:`~alchemist_magics.llm.generate_programs`; add the programs to a Workbench built on
    :func:`scores_dataset`.
    """
    client, existing, store = prepare_request(task, n, client, existing, store)
    slugs = list(SCORE_STRATEGIES)
    requests, extras = [], []
    for i in range(n):
        slug = slugs[(first_sample + i) % len(slugs)]
        used = [SCORE_STRATEGIES[slugs[(first_sample + j) % len(slugs)]] for j in range(i)]
        messages = score_program_messages(task, scores, strategy=SCORE_STRATEGIES[slug],
                                          used=list(dict.fromkeys(used)) or None, templates=templates)
        requests.append(Request(messages, temperature=temperature, max_tokens=max_tokens, sample=first_sample + i,
                                validate=validate_reply, purpose="program"))
        extras.append({"strategy": SCORE_STRATEGIES[slug], "name_prefix": f"scores_{slug}"})
    estimate = estimate_requests(client.model, [r.messages for r in requests], reply_tokens=TYPICAL_PROGRAM_REPLY_TOKENS,
                                 max_tokens=max_tokens or client.config.max_tokens, prices=client.meter.prices)
    with client.meter.limit(budget_usd):
        completions = client.complete_many(requests)
    programs, failures = collect(completions, extras, existing, store, similarity)
    return GenerationResult(programs, failures, estimate, completions)
