"""Distillation: features (TF-IDF, sentence embeddings, precomputed) and a small model trained on the
label model's probabilistic labels."""
from .features import (CombinedFeatures, EmbeddingStore, PrecomputedFeatures, SentenceEmbeddings, TfidfFeatures,
                       as_texts, default_text_encoder, embed_texts, extract, fingerprint, make_extractor)
from .model import METRICS, MLP, UNCOVERED, DistilledModel, soft_cross_entropy
from .threads import intra_op_threads

__all__ = ["CombinedFeatures", "DistilledModel", "EmbeddingStore", "as_texts", "default_text_encoder",
           "embed_texts", "fingerprint", "METRICS", "MLP", "PrecomputedFeatures", "SentenceEmbeddings",
           "TfidfFeatures", "UNCOVERED", "extract", "intra_op_threads", "make_extractor", "soft_cross_entropy"]
