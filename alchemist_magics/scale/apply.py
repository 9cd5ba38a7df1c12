"""Program application on a Dask cluster: one task per partition, the local sandbox inside each task.

The client checks the programs and the output cache first and schedules only what is missing; each
task runs ``apply_programs`` (fork-per-program sandbox, same limits) on its partition and returns
the raw int8 outcome codes plus one status per program. The client writes the codes into place as
tasks finish and merges statuses into one :class:`ProgramRun` per program; every partition's own
status stays in :attr:`DaskApplyResult.partitions`, so a failure on one worker is never lost.

Tasks are deterministic and carry their rows (or a loader), so when a worker dies the scheduler
re-runs its task elsewhere (up to ``distributed.scheduler.allowed-failures`` times) and ``retries``
re-runs a task that raised.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..programs.cache import OutputCache, fingerprint_inputs
from ..programs.check import check_program
from ..programs.labels import ABSTAIN, FAULT, INVALID, NOT_RUN, LabelSpace, to_label_matrix
from ..programs.program import Program
from ..programs import ApplyResult, ProgramRun, apply_programs, ok_message
from .client import resolve_client
from .partitions import Partition, split_rows

# Statuses under which a partition's labels count (as in the local engine, where a program that
# faults on some rows is still "ok"); any other partition status fails the whole program.
_USABLE = ("ok", "faulted")


@dataclass
class PartitionRun:
    """How one program fared on one partition: rows ``start..start+n_rows-1`` of the dataset.

    ``status`` is a :class:`ProgramRun` status, or ``task_failed`` when the partition's task itself
    failed (its loader raised, or the workers running it kept dying); ``worker`` ran it, under
    ``isolation`` (that worker's sandbox: ``"os"``, ``"audit-hook only"``, or ``"not recorded"``).
    """

    program: str
    partition: str
    start: int
    n_rows: int
    status: str
    message: str
    faults: int = 0
    invalid: int = 0
    runtime_s: float = 0.0
    worker: str = ""
    isolation: str = "not recorded"


@dataclass
class DaskApplyResult(ApplyResult):
    """An :class:`ApplyResult` plus ``partitions``: one :class:`PartitionRun` per (program run, partition)."""

    partitions: list[PartitionRun] = field(default_factory=list)

    def partition_summary(self, problems_only: bool = False) -> list[dict]:
        """One plain dict per (program, partition); ``problems_only`` keeps faults and failures."""
        rows = [vars(p).copy() for p in self.partitions]
        if problems_only:
            rows = [r for r in rows if r["status"] != "ok" or r["faults"] or r["invalid"]]
        return rows


def apply_programs_dask(
    programs: Sequence[Program | str],
    data,
    label_space: LabelSpace,
    client=None,
    *,
    cache: OutputCache | None = None,
    dataset_fingerprint: str | None = None,
    partition_rows: int = 100_000,
    workers: int | None = 1,
    time_limit_s: float = 60.0,
    memory_limit_mb: int | None = 2048,
    check: bool = True,
    allowed_imports: set[str] | None = None,
    retries: int = 2,
    progress: bool = True,
) -> DaskApplyResult:
    """Run every program on every row on a Dask cluster; same result as :func:`apply_programs`.

    Args:
        programs: :class:`Program` objects or source strings.
        data: a :class:`~alchemist_magics.data.dataset.Dataset`, a sequence of inputs (cut into
            ``partition_rows`` slices), or a list of :class:`Partition` (e.g. loaded on workers).
        label_space: normalises outputs.
        client: a ``distributed.Client``, a scheduler address, or None for the active client.
        cache: an :class:`OutputCache` checked on the client before anything is scheduled; complete
            ``ok`` runs are stored after. Partitions with loaders need ``dataset_fingerprint``.
        dataset_fingerprint: cache identity of the data (a Dataset's own fingerprint by default;
            computed from in-memory inputs like the local engine).
        workers: sandbox children per task (default 1: Dask already runs one task per worker thread;
            None uses the worker's CPUs).
        time_limit_s, memory_limit_mb, check, allowed_imports: as in :func:`apply_programs`; the
            time limit applies per program per partition.
        retries: extra attempts for a task that raised (a dead worker's task is re-run regardless).
        progress: a progress bar over partitions.
    """
    programs = [p if isinstance(p, Program) else Program(p) for p in programs]
    partitions, fingerprint = _partitions(data, partition_rows, dataset_fingerprint, cache is not None)
    starts = np.cumsum([0] + [p.n_rows for p in partitions])
    n, m = int(starts[-1]), len(programs)
    runs: list[ProgramRun | None] = [None] * m
    todo = []
    for j, program in enumerate(programs):
        why = "; ".join(check_program(program.source, allowed_imports).reasons) if check else ""
        if why:
            runs[j] = ProgramRun(program, "rejected", why)
            continue
        hit = cache.get(program, fingerprint, label_space, n) if cache is not None else None
        if hit is not None:
            runs[j] = ProgramRun(program, "ok", hit.message, hit.codes, hit.runtime_s, cached=True)
            continue
        todo.append(j)
    part_runs: list[PartitionRun] = []
    if todo:
        codes = np.empty((0, len(todo)), np.int8)
        if n:
            settings = dict(workers=workers, time_limit_s=time_limit_s, memory_limit_mb=memory_limit_mb,
                            check=check, allowed_imports=allowed_imports)
            codes, part_runs = _run_on_cluster(resolve_client(client), [programs[j] for j in todo], partitions,
                                               starts, label_space, settings, retries, progress)
        for col, j in enumerate(todo):
            runs[j] = _merge(programs[j], codes[:, col], part_runs[col * len(partitions):(col + 1) * len(partitions)])
            if cache is not None and runs[j].status == "ok":
                cache.put(programs[j], fingerprint, label_space, runs[j].codes, runs[j].message, runs[j].runtime_s)
    L = np.full((n, m), ABSTAIN, dtype=np.int8)
    for j, run in enumerate(runs):
        if run.status == "ok":
            L[:, j] = to_label_matrix(run.codes)
    return DaskApplyResult(L, runs, part_runs, isolation=_weakest_isolation(part_runs))


def _weakest_isolation(part_runs: list[PartitionRun]) -> str:
    """What held on every worker that ran something: ``"os"`` only if it held on all of them."""
    seen = {p.isolation for p in part_runs if p.status != "task_failed"}
    for level in ("not recorded", "audit-hook only"):
        if level in seen:
            return level
    return "os" if seen else "not recorded"


def _partitions(data, partition_rows: int, fingerprint: str | None, cached: bool) -> tuple[list[Partition], str | None]:
    from ..data.dataset import Dataset

    if isinstance(data, Dataset):
        return split_rows(data.inputs(), partition_rows), fingerprint or data.fingerprint
    if isinstance(data, (list, tuple)) and data and all(isinstance(p, Partition) for p in data):
        if cached and fingerprint is None:
            raise ValueError("partitions are not hashed on the client: pass dataset_fingerprint=... to use the cache")
        return list(data), fingerprint
    inputs = data if isinstance(data, list) else list(data)
    if cached and fingerprint is None and inputs:
        fingerprint = fingerprint_inputs(inputs)
    return split_rows(inputs, partition_rows), fingerprint


def _run_on_cluster(client, programs, partitions, starts, label_space, settings, retries, progress):
    """Submit one task per partition; fill the codes matrix and per-partition runs as they finish."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    n, m = int(starts[-1]), len(programs)
    codes = np.full((n, m), NOT_RUN, dtype=np.int8)
    slots: list[PartitionRun | None] = [None] * (len(partitions) * m)  # partition-major
    token = uuid.uuid4().hex[:12]
    futures = {
        client.submit(_label_partition, part, programs, label_space, settings,
                      key=f"alchemist-label-{token}-{i}", retries=retries): i
        for i, part in enumerate(partitions)
    }
    with tqdm(total=len(partitions), unit="partition", disable=not progress, desc="applying programs (dask)") as bar:
        for future in as_completed(futures):
            i = futures[future]
            part, start = partitions[i], int(starts[i])
            if future.status == "finished":
                part_codes, statuses, worker, isolation = future.result()
                codes[start:start + part.n_rows] = part_codes
                for col, (program, (status, message, runtime_s)) in enumerate(zip(programs, statuses)):
                    column = part_codes[:, col]
                    slots[i * m + col] = PartitionRun(
                        program.name, part.name, start, part.n_rows, status, message,
                        int(np.count_nonzero(column == FAULT)), int(np.count_nonzero(column == INVALID)),
                        runtime_s, worker, isolation)
            else:
                why = _describe_error(future)
                for col, program in enumerate(programs):
                    slots[i * m + col] = PartitionRun(program.name, part.name, start, part.n_rows, "task_failed", why)
            future.release()  # its result now lives in `codes`; let the workers forget it
            bar.update()
    part_runs = [slots[i * m + col] for col in range(m) for i in range(len(partitions))]
    return codes, part_runs  # program-major: program col's runs are part_runs[col*P:(col+1)*P]


def _describe_error(future) -> str:
    try:
        exc = future.exception()
    except Exception as err:  # cancelled or lost: the error is the reason
        exc = err
    return f"{type(exc).__name__}: {exc}"[:300]


def _label_partition(partition: Partition, programs: list[Program], label_space: LabelSpace, settings: dict):
    """The task body (runs on a worker): the local sandbox over one partition's rows."""
    from distributed import get_worker

    inputs = partition.inputs()
    result = apply_programs(programs, inputs, label_space, progress=False, **settings)
    codes = np.full((len(inputs), len(programs)), NOT_RUN, dtype=np.int8)
    for col, run in enumerate(result.runs):
        if run.codes is not None:
            codes[:, col] = run.codes
    statuses = [(run.status, run.message, run.runtime_s) for run in result.runs]
    return codes, statuses, get_worker().address, result.isolation


def _merge(program: Program, codes: np.ndarray, parts: list[PartitionRun]) -> ProgramRun:
    """One program's status over all partitions, worded like the local engine's where it can be."""
    runtime = sum(p.runtime_s for p in parts)
    failed = [p for p in parts if p.status not in _USABLE]
    if failed:
        first = failed[0]
        more = f" (and {len(failed) - 1} more partitions, see .partitions)" if len(failed) > 1 else ""
        status = "crashed" if first.status == "task_failed" else first.status
        return ProgramRun(program, status, f"partition {first.partition}: {first.message}{more}", codes, runtime)
    if len(codes) and np.all(codes == FAULT):
        return ProgramRun(program, "faulted", parts[0].message, codes, runtime)  # partition 0 holds row 0
    message = ok_message(codes)
    noisy = [p for p in parts if p.faults or p.invalid]
    if noisy:
        message += f" (first in partition {noisy[0].partition}: {noisy[0].message})"
    return ProgramRun(program, "ok", message, codes, runtime)
