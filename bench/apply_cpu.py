"""CPU efficiency of the sandbox, which a loaded machine does not distort the way it distorts wall time.

    python bench/apply_cpu.py --rows 100000

The 10 programs of ``bench/apply.py`` over the same rows: the bare in-process loop's CPU time
(``process_time``) against the CPU time summed over the sandbox's OS-isolated children
(``getrusage(RUSAGE_CHILDREN)``; the ``Sandbox`` runs in this process, as it does in the
supervisor). ``cpu_efficiency`` = loop / children: 1.0 would mean isolation, fork and result
handling cost nothing. Prints a JSON object as its last line.
"""
import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from apply import SOURCES, load_texts  # noqa: E402

from alchemist_magics.programs import LabelSpace, Program  # noqa: E402
from alchemist_magics.programs.check import find_entry  # noqa: E402
from alchemist_magics.programs.isolation import prepare, probe  # noqa: E402
from alchemist_magics.programs.sandbox import Sandbox  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    texts = load_texts(args.rows)
    programs = [Program(s) for s in SOURCES]
    jobs = [(p, find_entry(p.source)[0]) for p in programs]
    fns = []
    for program in programs:
        namespace = {}
        exec(program.source, namespace)
        fns.append(namespace[program.name])
    confinement = prepare()
    sandbox = Sandbox(texts, LabelSpace(["ham", "spam"]), 600.0, 2048, confinement)
    loop_cpu, child_cpu = [], []
    for _ in range(args.repeats):
        start = time.process_time()
        L_loop = np.stack([np.array([f(t) for t in texts], dtype=np.int8) for f in fns], axis=1)
        loop_cpu.append(time.process_time() - start)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        runs = dict(sandbox.run(jobs, args.workers))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        child_cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    same = all(np.array_equal(np.where(runs[j].codes >= 0, runs[j].codes, -1), L_loop[:, j]) for j in range(len(jobs)))
    print(json.dumps({"rows": len(texts), "programs": len(programs), "workers": args.workers,
                      "isolation": probe(confinement)["isolation"],
                      "loop_cpu_s": round(min(loop_cpu), 3), "children_cpu_s": round(min(child_cpu), 3),
                      "cpu_efficiency": round(min(loop_cpu) / min(child_cpu), 3), "same_matrix": bool(same)}))


if __name__ == "__main__":
    main()
