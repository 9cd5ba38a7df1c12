"""The LLM layer: prompts, an OpenAI-compatible client with cache, cost meter and budget, program
generation with provenance, the repair loop, and the zero-shot baseline / counterfactual.

Everything works from plain Python::

    from alchemist_magics.llm import LLMClient, generate_programs
    client = LLMClient(model="gpt-4o-mini")             # key from $OPENAI_API_KEY
    result = generate_programs(task, n=10, client=client, budget_usd=0.05, store=".alchemist")
    result.programs, result.failures, client.meter
"""
from .cache import ResponseCache
from .client import Completion, LLMClient, LLMConfig, MissingAPIKeyError, Request
from .cost import BudgetExceeded, CostMeter, Estimate, PriceTable, TokenCounter, estimate_requests
from .generate import Failure, GenerationResult, generate_programs, is_near_duplicate
from .prompts import STRATEGIES, Exemplar, PromptTemplates
from .provenance import ProgramStore
from ..aggregate.analysis import analysis_stats, weak_reasons  # what repair reads (programs' analysis rows)
from .repair import RepairRequest, repair_evidence, repair_examples, repair_programs
from .retrieval import DocumentRetriever, select_exemplars
from .two_stage import write_supplementary
from .zero_shot import ZeroShotResult, zero_shot_counterfactual, zero_shot_label

__all__ = [
    "BudgetExceeded", "Completion", "CostMeter", "DocumentRetriever", "Estimate", "Exemplar", "Failure",
    "GenerationResult", "LLMClient", "LLMConfig", "MissingAPIKeyError", "PriceTable", "ProgramStore",
    "PromptTemplates", "RepairRequest", "Request", "ResponseCache", "STRATEGIES", "TokenCounter",
    "ZeroShotResult", "analysis_stats", "estimate_requests", "generate_programs", "is_near_duplicate",
    "repair_evidence", "repair_examples", "repair_programs", "select_exemplars", "weak_reasons", "write_supplementary", "zero_shot_counterfactual",
    "zero_shot_label",
]
