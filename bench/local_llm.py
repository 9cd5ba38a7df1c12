"""A real language model, fully local: llama-cpp-python's OpenAI-compatible server over a GGUF file.

Run (see docs/local-llm.md for getting llama-cpp-python and a GGUF file):

    python bench/local_llm.py --gguf /work/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf \
        --server-python /work/llama-venv/bin/python [--datasets youtube,sms] [--n 10] [--threads 1]

or against a server that is already running (llama.cpp, Ollama, vLLM...):

    python bench/local_llm.py --base-url http://127.0.0.1:8765/v1

It starts the server on 127.0.0.1 (and stops it by its PID at the end), then for each dataset runs
the plain Python API with the client's *defaults* (no model name, no key, no concurrency, timeout
or max_tokens settings): generate_programs (the prompt as ``LLMWriter`` builds it: exemplars and
the words that mark each class in the dev rows, ``llm.writer.grounded_task``) -> Workbench.add (check + smoke test over every train
row) -> apply -> flags (silent, duplicate by output, not above chance, inverted: left out by
fit()) -> fit -> evaluate, then one LLM repair round (Workbench.repair: the prompt quotes the
program's exceptions and failing rows), then per-class narrowing (``Workbench.fit(narrow="auto")``:
the label model drops a program's votes for a class it gets mostly wrong on dev, when 5-fold
cross-validation on dev prefers it), and, for comparison, the offline synthesizer alone (``synth.OfflineWriter`` through
``Workbench.write``, ``n`` programs from the dev rows), LLM + synthesizer (the LLM's
programs kept only when cross-validation on dev prefers them: ``llm.join.join_if_better``) and
TF-IDF + logistic regression trained on the same labeled (dev) rows. Every set is fitted and
scored by its metric (``METRIC``: youtube accuracy, sms spam F1); no choice sees the test rows.
``--seeds 0,1,2`` repeats it per seed (exemplars, sample numbers and workbench seed) and prints
mean +- std. It compares the meter's tokens with the server's own
books (the "eval time = ... / N runs" line llama.cpp logs per request it computed; a request
computed for a client that had gone shows up there and not in the meter).
Last line: JSON with everything measured.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alchemist_magics import TaskSpec, Workbench  # noqa: E402
from alchemist_magics.data import load_wrench  # noqa: E402
from alchemist_magics.llm import CostMeter, LLMClient, generate_programs, select_exemplars  # noqa: E402
from alchemist_magics.llm.writer import grounded_task  # noqa: E402
from alchemist_magics.llm.join import join_if_better  # noqa: E402

DATA = Path(os.environ.get("ALCHEMIST_DATA", ROOT.parent / "shared" / "data"))
TASKS = {
    "youtube": TaskSpec("youtube", "Is this YouTube comment spam?", ["ham", "spam"],
                        input_description="the text of one YouTube comment (a str)"),
    "sms": TaskSpec("sms", "Is this SMS text message spam?", ["ham", "spam"],
                    input_description="the text of one SMS message (a str)"),
}
# The metric each set is scored with (WRENCH's): fit() chooses the label model and the CV choices by it.
METRIC = {"youtube": "accuracy", "sms": "f1"}
# llama.cpp's per-request books: generated tokens ("eval time = ... / N runs") and requests computed.
SERVER_RUNS = re.compile(r"^llama_perf_context_print:\s+eval time =\s*[\d.]+ ms /\s*(\d+) runs", re.M)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Skipped(Exception):
    pass


class LlamaServer:
    """``python -m llama_cpp.server`` over a GGUF file on 127.0.0.1, stopped by its PID."""

    def __init__(self, gguf: str, python: str, threads: int, ctx: int, log: Path):
        self.port = free_port()
        self.log_path = log
        self.cmd = [python, "-m", "llama_cpp.server", "--model", gguf, "--host", "127.0.0.1",
                    "--port", str(self.port), "--n_ctx", str(ctx), "--n_threads", str(threads)]
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, wait_s: float = 300) -> "LlamaServer":
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                urllib.request.urlopen(self.base_url + "/models", timeout=2).read()
                return self
            except OSError:
                time.sleep(1)
        raise RuntimeError(f"llama_cpp.server did not answer within {wait_s}s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()


def server_tokens(log: Path | None) -> tuple[int, int] | None:
    """(requests computed, tokens generated) from the server's log, or None without a log.
    (Its prompt counts leave out the prefix it had cached, so only generated tokens compare.)"""
    if log is None or not log.exists():
        return None
    found = [int(n) for n in SERVER_RUNS.findall(log.read_text(errors="replace"))]
    return len(found), sum(found)


def scores(wb: Workbench, metric: str = "accuracy", **fit) -> dict:
    """Test scores with the defaults (or ``fit``'s options): fit() (label model chosen on dev by
    ``metric``) leaves the flagged programs out and narrows votes (and says which)."""
    wb.fit(metric=metric, **fit)
    acc = wb.scores("test", "accuracy")
    f1 = wb.scores("test", "f1")
    return {"accuracy": round(acc["label_model"], 4), "f1": round(f1["label_model"], 4),
            "majority_accuracy": round(acc["majority_vote"], 4), "majority_f1": round(f1["majority_vote"], 4),
            "coverage": round(acc["coverage"], 4), "model": wb.model_name, "programs": len(wb.programs),
            "used": len(wb.programs) - len(wb.left_out), "left_out": dict(wb.left_out), "fit_notes": list(wb.fit_notes),
            "drop_weak_false": _weak_kept(wb, metric, **fit)}


def _weak_kept(wb: Workbench, metric: str, **fit) -> dict:
    """The same fit with every weak program kept (drop_weak=False), for comparison only."""
    wb.fit(metric=metric, drop_weak=False, **fit)
    out = {"accuracy": round(wb.scores("test", "accuracy")["label_model"], 4),
           "f1": round(wb.scores("test", "f1")["label_model"], 4)}
    wb.fit(metric=metric, **fit)
    return out


def flag_list(wb: Workbench) -> list[str]:
    return [f"{name}: {row['Flag']}: {row['Reason']}" for name, row in wb.flags().iterrows()]


def tfidf_baseline(dev, test) -> dict:
    """TF-IDF + logistic regression trained on the same labeled rows (dev), scored on test, with the
    guard's settings (balanced class weights, C fixed up front)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from alchemist_magics.aggregate.guard import LR_C
    from alchemist_magics.aggregate.select import score

    vec = TfidfVectorizer(sublinear_tf=True)
    lr = LogisticRegression(C=LR_C, class_weight="balanced", max_iter=1000).fit(vec.fit_transform(dev.texts), dev.labels)
    pred = lr.predict(vec.transform(test.texts))
    return {"accuracy": round(score(test.labels, pred, "accuracy"), 4), "f1": round(score(test.labels, pred, "f1"), 4),
            "rows": len(dev)}


def run_dataset(name: str, base_url: str, n: int, seed: int, cache: Path, root: Path, log: Path | None,
                repair_rounds: int = 1) -> dict:
    task, metric = TASKS[name], METRIC[name]
    splits = load_wrench(DATA / name)
    train, dev, test = splits["train"], splits["valid"], splits["test"]
    meter = CostMeter()
    progress = []
    client = LLMClient(base_url=base_url, cache=cache, meter=meter, on_progress=progress.append)
    before = server_tokens(log)
    t0 = time.monotonic()
    exemplars = select_exemplars(dev.texts, dev.labels, task.classes, seed=seed)
    prompt_task = grounded_task(task, dev.texts, dev.labels, train.texts, seed=seed)  # as LLMWriter does
    gen = generate_programs(prompt_task, n, client, exemplars=exemplars, first_sample=seed * 1000)
    gen_s = time.monotonic() - t0
    after = server_tokens(log)
    out = {"model": client.model, "n": n, "seed": seed, "generate_s": round(gen_s, 1),
           "programs_generated": len(gen.programs), "failures": [str(f) for f in gen.failures],
           "rejected_candidates": [str(f) for f in gen.rejected],
           "meter": meter.summary(), "cost_text": gen.cost_text,
           "limiter_history": client.limiter.history if client.limiter else None,
           "timeouts": sum(f.startswith("timeout") for c in gen.completions for f in c.failures),
           "truncated_salvaged": sum(c.finish_reason == "length" for c in gen.completions if c.ok)}
    if before is not None and after is not None:
        out["server_requests_computed"] = after[0] - before[0]
        out["server_generated_tokens"] = after[1] - before[1]
        out["meter_requests"] = meter.requests
        out["meter_completion_tokens"] = meter.completion_tokens
    # generate -> add (check + smoke test over every train row) -> apply -> flags -> fit -> evaluate
    wb = Workbench(task, train, dev=dev, test=test, root=root / f"{name}-llm-{seed}", seed=seed)
    added = [p for p in gen.programs if wb.add(p)]
    out["smoke_rejected"] = [f"{p.name}: {why}" for p, why in wb.rejected]
    out["added"] = len(added)
    out["programs_kept"] = len(added)
    wb.apply(progress=False)
    out["flags"] = flag_list(wb)
    out["llm_only_before_repair"] = scores(wb, metric, narrow=False) if wb.programs else None
    out["llm_only_before_repair_keep_flagged"] = None
    if wb.programs:
        wb.fit(metric=metric, keep_flagged=True)
        out["llm_only_before_repair_keep_flagged"] = {
            "accuracy": round(wb.scores("test", "accuracy")["label_model"], 4),
            "f1": round(wb.scores("test", "f1")["label_model"], 4)}
    # One repair round with the LLM: weak programs rewritten from their stats, wrong and unlabeled dev
    # rows and quoted exceptions (Workbench.repair_requests); identical requests sent once.
    t1 = time.monotonic()
    repair_before = (meter.requests, server_tokens(log))
    try:
        if repair_rounds < 1 or not wb.programs:
            raise _Skipped
        out["weak"] = [f"{p.name}: {', '.join(r)}" for p, _, r in wb.weak_programs()]
        repaired = wb.repair(client)
        out["repair_failures"] = list(wb.repair_failures)
        if repaired:
            wb.apply(progress=False)
        out["repaired"] = [p.name for p in repaired]
        out["repair_requests"] = meter.requests - repair_before[0]
        out["repair_cache_hits"] = meter.cache_hits
        out["flags_after_repair"] = flag_list(wb)
    except _Skipped:
        out["repaired"] = "skipped"
    except Exception as error:  # noqa: BLE001 - report, keep the other numbers
        out["repair_error"] = f"{type(error).__name__}: {error}"
    out["repair_s"] = round(time.monotonic() - t1, 1)
    out.update(llm_only_arms(wb, metric))
    out["llm_programs"] = [p.name for p in wb.programs]
    out.update(synth_arms(name, list(wb.programs), n, seed, root))
    # A re-run of the same generation is served from the cache: no request at all.
    rerun_meter = CostMeter()
    again = generate_programs(prompt_task, n, LLMClient(base_url=base_url, cache=cache, meter=rerun_meter),
                              exemplars=exemplars, first_sample=seed * 1000)
    out["rerun_requests"] = rerun_meter.requests
    out["rerun_cache_hits"] = again.cache_hits
    out["wall_s"] = round(time.monotonic() - t0, 1)
    return out


def llm_only_arms(wb: Workbench, metric: str) -> dict:
    """The LLM's programs alone (after the checks, flags and repair round): ``llm_only`` with fit()'s
    defaults (narrowing, and the label model learned from the dev labels when 5-fold CV on dev
    prefers it), ``llm_only_unsupervised`` without that learned model, ``llm_only_as_written``
    without narrowing either."""
    if not wb.programs:
        return {"llm_only": None}
    out = {"llm_only_as_written": scores(wb, metric, narrow=False, supervised=False),
           "llm_only_unsupervised": scores(wb, metric, supervised=False)}
    out["llm_only"] = scores(wb, metric)  # the defaults
    out["narrowed"] = {n: [wb.task.classes[c] for c in cs] for n, cs in wb.narrowed.items()}
    return out


def synth_arms(name: str, llm_programs: list, n: int, seed: int, root: Path) -> dict:
    """The offline synthesizer alone (the product's writer: ``synth.OfflineWriter`` through
    ``Workbench.write``, ``n`` programs from the dev rows), LLM + synthesizer (the LLM's programs kept
    only when 5-fold cross-validation on dev prefers them: ``join_if_better``; ``llm_plus_synth_all``
    keeps them all) and TF-IDF LR on the dev rows. The synthesizer's programs read their workbench's
    concept views, so each workbench writes its own (same rows, seed and embeddings: same programs)."""
    from alchemist_magics.synth.writer import OfflineWriter

    task, metric = TASKS[name], METRIC[name]
    splits = load_wrench(DATA / name)
    train, dev, test = splits["train"], splits["valid"], splits["test"]
    embeddings, out = root / f"{name}-embeddings", {}
    wb_s = Workbench(task, train, dev=dev, test=test, root=root / f"{name}-synth-{seed}", seed=seed)
    written = wb_s.write(OfflineWriter(cache_dir=embeddings, metric=metric), n)
    out["synth_programs"] = [p.name for p in written.accepted]
    wb_s.apply(progress=False)
    out["synth_only"] = scores(wb_s, metric)
    wb_b = Workbench(task, train, dev=dev, test=test, root=root / f"{name}-both-{seed}", seed=seed)
    wb_b.write(OfflineWriter(cache_dir=embeddings, metric=metric), n)
    wb_b.add_all(llm_programs)
    wb_b.apply(progress=False)
    out["llm_plus_synth_all"] = scores(wb_b, metric)  # join_if_better compares what this fit used
    out["join"] = vars(join_if_better(wb_b, [p.name for p in llm_programs], metric))
    out["llm_plus_synth"] = scores(wb_b, metric)
    out["tfidf_lr_dev_rows"] = tfidf_baseline(dev, test)
    return out


def recombine(previous: Path, name: str, seed: int, n: int, root: Path) -> dict:
    """A finished run's row for ``name``/``seed`` with the LLM-only and synthesizer arms computed
    again by this code: the LLM programs it kept (after its checks and repair round: ``llm_programs``,
    read back from its workbench's store; every stored program for runs older than that field) are
    applied and fitted again, so no request is sent (e.g. after fit() or the synthesizer changed).
    The run's own LLM-only numbers stay as ``llm_only_at_run``."""
    from alchemist_magics.llm import ProgramStore

    rows = json.loads((previous / "result.json").read_text())["datasets"][name]
    row = next(r for r in (rows if isinstance(rows, list) else [rows]) if r["seed"] == seed)
    stored = {p.name: p for p in ProgramStore(TASKS[name].name, previous / "wb" / f"{name}-llm-{seed}").load()}
    programs = [stored[p] for p in row["llm_programs"]] if "llm_programs" in row else list(stored.values())
    splits = load_wrench(DATA / name)
    wb = Workbench(TASKS[name], splits["train"], dev=splits["valid"], test=splits["test"],
                   root=root / f"{name}-llm-{seed}", seed=seed)
    wb.add_all(programs)
    wb.apply(progress=False)
    return {**row, "recombined_from": str(previous), "llm_only_at_run": row.get("llm_only"),
            "llm_programs": [p.name for p in programs], **llm_only_arms(wb, METRIC[name]),
            **synth_arms(name, programs, n, seed, root)}


def summarize(rows: list[dict], metric: str) -> dict:
    """Mean and sample std over seeds of ``metric`` for each arm."""
    import statistics

    out = {}
    for arm in ("llm_only", "llm_only_unsupervised", "llm_only_as_written", "llm_only_before_repair",
                "synth_only", "llm_plus_synth",
                "llm_plus_synth_all", "tfidf_lr_dev_rows"):
        values = [r[arm][metric] for r in rows if r.get(arm)]
        if values:
            out[arm] = {"mean": round(statistics.fmean(values), 4),
                        "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
                        "values": values}
    out["seeds"] = [r["seed"] for r in rows]
    out["llm_plus_synth_ge_synth"] = [r["llm_plus_synth"][metric] >= r["synth_only"][metric] for r in rows]
    return out


def _has_row(work: Path, name: str, seed: int) -> bool:
    path = work / "result.json"
    rows = json.loads(path.read_text())["datasets"].get(name, []) if path.exists() else []
    return any(r["seed"] == seed for r in (rows if isinstance(rows, list) else [rows]))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gguf", help="path to a GGUF file (starts llama-cpp-python's server)")
    parser.add_argument("--server-python", default=sys.executable,
                        help="the Python that has llama-cpp-python[server] installed")
    parser.add_argument("--base-url", help="use a running OpenAI-compatible server instead")
    parser.add_argument("--server-log", help="that server's log (for its own token books)")
    parser.add_argument("--datasets", default="youtube,sms")
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (overrides --seed); mean +- std printed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repair-rounds", type=int, default=1, choices=[0, 1])
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--work", default=None, help="folder for the cache and workbenches (default: a temp dir)")
    parser.add_argument("--recombine", nargs="+", metavar="WORK", default=None,
                        help="finished runs' --work folders: reuse their LLM programs, compute the LLM-only "
                             "and synthesizer arms again (no server needed)")
    args = parser.parse_args(argv)
    if not args.gguf and not args.base_url and not args.recombine:
        parser.error("give --gguf PATH (see docs/local-llm.md for how to get one) or --base-url URL")
    work = Path(args.work or tempfile.mkdtemp(prefix="alchemist-local-llm-"))
    work.mkdir(parents=True, exist_ok=True)
    server, log = None, Path(args.server_log) if args.server_log else None
    started = time.monotonic()
    result = {"datasets": {}, "work": str(work)}
    try:
        if args.gguf and not args.recombine:
            log = work / "llama-server.log"
            server = LlamaServer(args.gguf, args.server_python, args.threads, args.ctx, log).start()
            result["server"] = {"cmd": " ".join(server.cmd), "start_s": round(time.monotonic() - started, 1)}
        base_url = server.base_url if server else args.base_url
        seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [args.seed]
        for name in args.datasets.split(","):
            rows = []
            for seed in seeds:
                if args.recombine:
                    previous = next(Path(w) for w in args.recombine if _has_row(Path(w), name, seed))
                    row = recombine(previous, name, seed, args.n, work / "wb")
                else:
                    row = run_dataset(name, base_url, args.n, seed, work / "cache", work / "wb", log,
                                      repair_rounds=args.repair_rounds)
                rows.append(row)
                result["datasets"][name] = row if len(seeds) == 1 else rows
                llm = row["llm_only"] or {}
                print(f"{name} seed {seed}: {row['programs_kept']} programs kept of {args.n} requested "
                      f"({row['programs_generated']} generated, {len(row['failures'])} failed requests, "
                      f"{row['timeouts']} timeouts, {len(row['flags'])} flagged); meter {row.get('meter_requests')} "
                      f"requests, {row.get('meter_completion_tokens')} completion tokens vs server "
                      f"{row.get('server_requests_computed')} computed, {row.get('server_generated_tokens')} generated; "
                      f"LLM-only (after repair) test acc {llm.get('accuracy')} f1 {llm.get('f1')}; synth "
                      f"{row['synth_only']['accuracy']}/{row['synth_only']['f1']}; LLM+synth "
                      f"{row['llm_plus_synth']['accuracy']}/{row['llm_plus_synth']['f1']}; TF-IDF LR "
                      f"{row['tfidf_lr_dev_rows']['accuracy']}/{row['tfidf_lr_dev_rows']['f1']}; {row['cost_text']}; "
                      f"{row['wall_s']} s", flush=True)
                (work / "result.json").write_text(json.dumps(result, indent=1, default=str))
            if len(seeds) > 1:
                metric = METRIC[name]
                result.setdefault("summary", {})[name] = summary = summarize(rows, metric)
                print(f"{name} ({metric}, {len(seeds)} seeds): " + "; ".join(
                    f"{arm} {v['mean']:.3f} +- {v['std']:.3f}" for arm, v in summary.items() if isinstance(v, dict)),
                    flush=True)
                (work / "result.json").write_text(json.dumps(result, indent=1, default=str))
    finally:
        if server is not None:
            server.stop()
    result["wall_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(result, default=str))
    return result


if __name__ == "__main__":
    main()
