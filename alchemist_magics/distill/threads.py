"""One place that changes torch's intra-op thread count, always restored afterwards.

This package sets ``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP threads sleep rather than spin, so a
busy 2-core machine does not slow to a crawl). The price: every parallel op wakes its sleeping
threads, ~50 us each time. For small ops (the distilled MLP's, a tiny CLIP's) that wake-up costs
more than the second core gives, so those callers run with fewer threads for the duration of the
call, through :func:`intra_op_threads`.
"""
from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def intra_op_threads(count: int | None):
    """Run the block with ``torch.set_num_threads(count)`` (at least 1); ``None`` changes nothing.

    Process-wide (torch has one setting), so concurrent callers share it until the block ends.
    """
    import torch

    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(max(1, int(count)))
    try:
        yield
    finally:
        torch.set_num_threads(before)
