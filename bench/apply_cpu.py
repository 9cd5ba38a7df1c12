"""Where the sandbox's time goes, in CPU time and page faults, which a loaded machine distorts far less than wall time.

    python bench/apply_cpu.py --rows 100000
    python bench/apply_cpu.py --rows 100000 --package /tmp/base   # the same measures of another checkout (A/B)

The 10 programs of ``bench/apply.py`` over the same rows, three measures, taken in turns round after round:

- ``sandbox``: the bare in-process loop's CPU time (``process_time``) against the CPU time, system time
  and minor faults summed over the OS-isolated children (``getrusage(RUSAGE_CHILDREN)``; the
  ``Sandbox`` runs in this process, as it does in the supervisor). ``cpu_efficiency`` = loop /
  children: 1.0 would mean that isolation, fork and result handling cost nothing.
- ``apply``: ``apply_programs`` end to end through the supervisor: wall time, and the CPU of this
  process (the kernel: fingerprint, check, frames), of the supervisor and of its children (read
  from ``/proc``), with the bare loop's wall time in the same round (``bar_ratio_paired``, as in
  ``bench/apply.py``).
- ``ceiling``: what the machine itself gives: the bare loop in one plain forked process against the
  same loop in ``workers`` plain forked processes at once (no isolation, no pipes); ``scaling`` =
  workers x one loop's wall time / the concurrent ones' (``workers`` on a machine that scales
  perfectly), ``cpu_inflation`` = a loop's CPU time while the others run / alone (1.0: no
  sharing of the cores' caches, memory bandwidth or the host's threads).

Prints a JSON object as its last line (medians over rounds; ``min`` where named).
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--rows", type=int, default=100_000)
parser.add_argument("--repeats", type=int, default=4)
parser.add_argument("--workers", type=int, default=2)
parser.add_argument("--package", default=str(Path(__file__).resolve().parents[1]),
                    help="the checkout whose alchemist_magics is measured (default: this one)")
args = parser.parse_args()
sys.path.insert(0, args.package)
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from alchemist_magics.programs import LabelSpace, Program, apply_programs  # noqa: E402  (from --package, first)
from apply import SOURCES, load_texts  # noqa: E402,I001
from alchemist_magics.programs.check import find_entry  # noqa: E402
from alchemist_magics.programs.isolation import prepare, probe  # noqa: E402
from alchemist_magics.programs.sandbox import Sandbox  # noqa: E402
from alchemist_magics.programs.supervisor import shared_supervisor  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


def bare_loop(fns, texts):
    return np.stack([np.array([f(t) for t in texts], dtype=np.int8) for f in fns], axis=1)


def children_usage():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return np.array([ru.ru_utime + ru.ru_stime, ru.ru_stime, ru.ru_minflt])


def supervisor_usage():
    """(own CPU, its reaped children's CPU, their minor faults) of the supervisor that forks the children."""
    outer = shared_supervisor().process.pid
    with open(f"/proc/{outer}/task/{outer}/children") as f:
        inner = f.read().split()  # in a pid namespace the real supervisor is the outer one's child
    with open(f"/proc/{inner[0] if inner else outer}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return np.array([(int(fields[11]) + int(fields[12])) / _TICK, (int(fields[13]) + int(fields[14])) / _TICK,
                     int(fields[8])])


def sandbox_usage(sandbox, jobs):
    """``(CPU, system CPU, minor faults)`` summed over the children of one ``Sandbox.run``, and their codes.

    It runs in a forked helper: the end of a run kills every process below the one that ran it,
    which here would include the supervisor of the ``apply`` measure.
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            runs = dict(sandbox.run(jobs, args.workers))
            usage = children_usage()
            codes = np.stack([runs[j].codes for j in range(len(jobs))], axis=1)
            with os.fdopen(write, "wb") as f:
                f.write(usage.astype(np.float64).tobytes() + codes.tobytes())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return np.frombuffer(data[:24], np.float64), np.frombuffer(data[24:], np.int8).reshape(sandbox.n, len(jobs))


def forked(groups, texts) -> tuple[float, float]:
    """One plain forked process per group of programs, all at once: the wall time from the first fork to
    the last exit, and their CPU time per process."""
    before, start, pids = children_usage()[0], time.perf_counter(), []
    for fns in groups:
        pid = os.fork()
        if pid == 0:
            try:
                bare_loop(fns, texts)
            finally:
                os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    return time.perf_counter() - start, (children_usage()[0] - before) / len(groups)


def main():
    texts = load_texts(args.rows)
    programs = [Program(s) for s in SOURCES]
    space = LabelSpace(["ham", "spam"])
    jobs = [(p, find_entry(p.source)[0]) for p in programs]
    fns = []
    for program in programs:
        namespace = {}
        exec(program.source, namespace)
        fns.append(namespace[program.name])
    confinement = prepare()
    sandbox = Sandbox(texts, space, 600.0, 2048, confinement)
    apply_programs(programs, texts, space, workers=args.workers, progress=False)  # supervisor up, rows sent
    sandbox_usage(sandbox, jobs)  # the Sandbox's cost table filled, as the supervisor's is
    rounds = []
    for _ in range(args.repeats):
        r = {}
        start = time.process_time()
        L_loop = bare_loop(fns, texts)
        r["loop_cpu_s"] = time.process_time() - start
        (r["children_cpu_s"], r["children_sys_s"], r["children_minflt"]), codes = sandbox_usage(sandbox, jobs)
        wall = time.perf_counter()
        bare_loop(fns, texts)
        r["loop_wall_s"] = time.perf_counter() - wall
        own, sup = time.process_time(), supervisor_usage()
        wall = time.perf_counter()
        result = apply_programs(programs, texts, space, workers=args.workers, progress=False)
        r["apply_wall_s"] = time.perf_counter() - wall
        r["apply_kernel_cpu_s"] = time.process_time() - own
        r["apply_supervisor_cpu_s"], r["apply_children_cpu_s"], r["apply_children_minflt"] = supervisor_usage() - sup
        r["bar_ratio_paired"] = r["loop_wall_s"] / (args.workers * r["apply_wall_s"])
        one_wall, one_cpu = forked([fns], texts)
        all_wall, all_cpu = forked([fns] * args.workers, texts)
        r["ceiling_scaling"] = args.workers * one_wall / all_wall
        r["ceiling_cpu_inflation"] = all_cpu / one_cpu  # > 1: a loop costs more CPU while the others run
        rounds.append(r)
    same = np.array_equal(np.where(codes >= 0, codes, -1), L_loop) and np.array_equal(result.L, L_loop)
    med = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    report = {"rows": len(texts), "programs": len(programs), "workers": args.workers, "repeats": args.repeats,
              "package": args.package, "isolation": probe(confinement)["isolation"],
              "load_avg": round(os.getloadavg()[0], 2), "same_matrix": bool(same),
              "loop_cpu_s_min": round(min(r["loop_cpu_s"] for r in rounds), 3),
              "children_cpu_s_min": round(min(r["children_cpu_s"] for r in rounds), 3),
              "cpu_efficiency": round(min(r["loop_cpu_s"] for r in rounds) / min(r["children_cpu_s"] for r in rounds), 3)}
    report.update({key: round(float(value), 3) for key, value in med.items()})
    print(json.dumps(report))


if __name__ == "__main__":
    main()
