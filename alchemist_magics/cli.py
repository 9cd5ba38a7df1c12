"""Headless entry point: ``alchemist demo`` (or ``python -m alchemist_magics demo``).

``doctor`` says which sandbox isolation layers this machine gives program children.
``demo`` runs the engine end to end on the WRENCH YouTube spam data with no key, no GPU and no
network: the example programs go through the check, the sandbox and the output cache, the label
model is chosen on the dev split, and the same label models run on WRENCH's stored label matrix
for comparison.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from .data import DATA_ENV, find_dataset

def find_data_dir(given: str | None, name: str = "youtube") -> Path:
    """The folder holding the public datasets (see :mod:`alchemist_magics.data.public` for the order)."""
    folder = find_dataset(name, given)
    if folder is None:
        raise SystemExit(f"alchemist: no data folder with {name}/ found; pass --data DIR or set {DATA_ENV} "
                         "to a folder with WRENCH-format subfolders (e.g. youtube/)")
    return folder.parent


def _print(title: str, frame: pd.DataFrame) -> None:
    print(f"\n== {title}")
    with pd.option_context("display.width", 160, "display.max_columns", 30, "display.precision", 3):
        print(frame.to_string())


def demo(args: argparse.Namespace) -> int:
    """Engine end to end on WRENCH youtube: example programs and WRENCH's stored matrix."""
    from .data import load_wrench
    from .examples.youtube import PROGRAMS
    from .task import TaskSpec
    from .workbench import Workbench

    splits = load_wrench(find_data_dir(args.data) / "youtube")
    train, dev, test = splits["train"], splits["valid"], splits["test"]
    task = TaskSpec("youtube-spam", "Is this YouTube comment spam?", train.classes)
    bench = Workbench(task, train, dev, test, root=args.root, seed=args.seed)
    accepted = bench.add_all(PROGRAMS)
    print(f"{accepted} of {len(PROGRAMS)} programs accepted"
          + "".join(f"\n  rejected {p.name}: {why}" for p, why in bench.rejected))
    bench.apply(progress=not args.quiet)
    _print(f"program analysis (train n={len(train)}; Emp. Acc. on dev n={len(dev)})", bench.analysis())
    bench.fit()
    _print("label models on dev (chosen on dev only)", bench.selection.scores)
    _print(f"test (n={len(test)}), our programs", bench.evaluate("test"))

    stored = Workbench(task, train, dev, test, root=None, seed=args.seed)
    stored.use_stored_matrices()
    stored.fit()
    _print("WRENCH's stored label matrix (10 human LFs): label models on dev", stored.selection.scores)
    _print("WRENCH's stored label matrix: test", stored.evaluate("test"))
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """Programs -> label model -> distilled model on one public data set, mean ± std over seeds."""
    from .data import load_public
    from .evaluate import evaluate_pipeline

    bench = load_public(find_data_dir(args.data, args.dataset), args.dataset)
    source = bench.human if args.source == "wrench" else "synth"
    if source is None:
        raise SystemExit(f"alchemist: {args.dataset} has no human programs offline; use --source synth")
    for note in bench.notes:
        print(f"note: {note}")
    result = evaluate_pipeline(bench.train, bench.dev, bench.test, bench.task, source, seeds=tuple(range(args.seeds)),
                               distill=None if args.distill == "none" else args.distill, metric=bench.metric)
    runs = pd.DataFrame(result.runs).set_index("seed")
    _print(f"{args.dataset}, {args.source} programs: test {bench.metric} per seed", runs)
    print(f"\n{result!r}")
    zero_shot = ", ".join(f"{m} ${z['usd']:.4f}" for m, z in result.cost["zero_shot"].items())
    print(f"cost: programs ${result.cost['programs_usd']:.4f}; zero-shot on {len(bench.train)} train rows: {zero_shot}")
    return 0


def doctor(args: argparse.Namespace) -> int:
    """Which sandbox isolation layers this machine gives program children (checked by a probe child)."""
    import json

    from .programs import describe_isolation, isolation_report

    if args.json:
        print(json.dumps(isolation_report(), indent=2))
    else:
        print(describe_isolation())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run a subcommand."""
    parser = argparse.ArgumentParser(prog="alchemist", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("demo", help="run the engine end to end on WRENCH youtube (no key, no GPU, no network)")
    p.add_argument("--data", help=f"folder with WRENCH datasets (default ${DATA_ENV} or ../shared/data)")
    p.add_argument("--root", default=".alchemist", help="where programs, provenance and caches go")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=demo)
    p = sub.add_parser("evaluate", help="programs -> label model -> distilled model on a public data set, over seeds")
    p.add_argument("--data", help=f"folder with the public data sets (default ${DATA_ENV} or ../shared/data)")
    p.add_argument("--dataset", default="youtube", help="a WRENCH-format folder under --data (youtube, sms, trec, imdb, ...)")
    p.add_argument("--source", default="synth", choices=["synth", "wrench"],
                   help="offline synthesizer, or WRENCH's human programs")
    p.add_argument("--seeds", type=int, default=5, help="number of seeds (0..N-1)")
    p.add_argument("--distill", default="mlp", choices=["mlp", "logreg", "none"])
    p.set_defaults(func=evaluate)
    p = sub.add_parser("doctor", help="which sandbox isolation layers (seccomp, Landlock, namespaces) are active here")
    p.add_argument("--json", action="store_true", help="the full report as JSON")
    p.set_defaults(func=doctor)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
