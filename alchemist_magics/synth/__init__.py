"""Offline program writers (no LLM): keyword/shape rules from labeled texts, programs over concept
scores, and the offline repair of weak programs from their mistakes."""
from .repair import Evidence, NothingToLearn, program_stats, repair_offline, repair_program, workbench_evidence
from .score_programs import synthesize_score_programs
from .text_rules import DECISION_RULES, synthesize_programs

__all__ = ["DECISION_RULES", "Evidence", "NothingToLearn", "program_stats", "repair_offline", "repair_program",
           "synthesize_programs", "synthesize_score_programs", "workbench_evidence"]
