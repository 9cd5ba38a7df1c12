"""Programs: extract code from LLM replies, check it, run it sandboxed, normalise and cache outputs."""
from .cache import OutputCache, fingerprint_inputs
from .check import DEFAULT_ALLOWED_IMPORTS, CheckResult, check_program, find_entry
from .extract import Extraction, extract_programs
from .labels import ABSTAIN, FAULT, INVALID, NOT_RUN, LabelSpace, to_label_matrix
from .program import Program
from .apply import apply_programs, default_workers
from .isolation import describe_isolation, isolation_report
from .results import ApplyResult, ProgramRun, ok_message
from .smoke import smoke_test
from .snorkel_compat import from_snorkel, is_labeling_function, to_snorkel_lfs

__all__ = [
    "ABSTAIN", "FAULT", "INVALID", "NOT_RUN", "DEFAULT_ALLOWED_IMPORTS", "ApplyResult", "CheckResult",
    "Extraction", "LabelSpace", "OutputCache", "Program", "ProgramRun", "apply_programs", "check_program",
    "default_workers", "describe_isolation", "isolation_report", "ok_message",
    "extract_programs", "find_entry", "fingerprint_inputs", "smoke_test", "to_label_matrix", "to_snorkel_lfs",
    "from_snorkel", "is_labeling_function",
]
