"""Loader fuzz run: thousands of mutated exports of every format, each checked against the contract.

Usage: PYTHONPATH=src:. .venv/bin/python bench/fuzz.py --cases 10000 [--seed 1] [--workers 2]

Builds the seed corpus (``tests/fuzz_corpus.py``), then for each case picks a format, a seed
of it, a mutation and strict or lenient mode from a seeded ``random.Random``, and runs
``tests.fuzz_cases.run_case``. Prints the case count, cases per format and per outcome, and
every failure with the case number that reproduces it (``--only N``). Exit code 1 if any case
broke the contract. The pytest suite runs the same cases through hypothesis, a few dozen per
format (``tests/test_fuzz.py``).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fuzz_cases import mutate
from tests.fuzz_checks import Baseline, baseline, run_case
from tests.fuzz_corpus import Seed, build_corpus

_STATE: dict[str, object] = {}


def _setup() -> None:
    root = Path(tempfile.mkdtemp(prefix="sl-fuzz-"))
    seeds = build_corpus(root / "seeds")
    by_format: dict[str, list[Seed]] = {}
    for seed in seeds:
        by_format.setdefault(seed.fmt, []).append(seed)
    _STATE.update(root=root, by_format=by_format, baselines={})


def _case(args: tuple[int, int]) -> tuple[int, str, str, str, str | None]:
    if "by_format" not in _STATE:
        _setup()
    number, run_seed = args
    rng = random.Random(f"{run_seed}:{number}")
    by_format: dict[str, list[Seed]] = _STATE["by_format"]  # type: ignore[assignment]
    baselines: dict[str, Baseline] = _STATE["baselines"]  # type: ignore[assignment]
    formats = sorted(by_format)
    # The mixed folder loads 17 files per case: one case in 40 keeps the run short.
    fmt = "mixed" if rng.random() < 0.025 else rng.choice([f for f in formats if f != "mixed"])
    seed = rng.choice(by_format[fmt])
    if seed.name not in baselines:
        baselines[seed.name] = baseline(seed)
    out = Path(tempfile.mkdtemp(dir=_STATE["root"]))  # type: ignore[arg-type]
    try:
        try:
            case = mutate(seed, out, rng.randrange)
        except Exception:
            return number, fmt, "?", "HARNESS", f"{seed.name}\n{traceback.format_exc(limit=-3)}"
        strict = rng.random() < 0.5
        try:
            outcome = run_case(case, baselines[seed.name], strict=strict)
        except Exception:
            tb = traceback.format_exc()
            return number, fmt, case.op, "FAIL", f"{seed.name} {case.op} strict={strict}\n{tb}"
        return number, fmt, case.op, outcome, None
    finally:
        if _STATE.get("keep"):
            print(f"case {number}: {seed.name} mutated copy kept in {out}", file=sys.stderr)
        else:
            shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--only", type=int, help="run only case number N (to reproduce)")
    args = parser.parse_args()

    if args.only is not None:
        _STATE["keep"] = True
    numbers = [args.only] if args.only is not None else range(args.cases)
    jobs = [(n, args.seed) for n in numbers]
    started = time.perf_counter()
    per_format: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    pool = ProcessPoolExecutor(args.workers) if args.workers > 1 else None
    results = pool.map(_case, jobs, chunksize=20) if pool else map(_case, jobs)
    done = 0
    try:
        for number, fmt, op, outcome, failure in results:
            done += 1
            per_format[fmt] += 1
            outcomes[outcome] += 1
            if failure:
                kind = "mutation failed (a harness bug)" if outcome == "HARNESS" else op
                failures.append(f"case {number} ({fmt}, {kind}): {failure}")
                print(failures[-1], flush=True)  # as it happens: a long run may be cut short
            if done % 500 == 0:
                print(f"... {done} cases, {len(failures)} failures", flush=True)
    except KeyboardInterrupt:
        print("interrupted: counts so far")
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    seconds = time.perf_counter() - started
    print(f"cases: {done} in {seconds:.0f} s (seed {args.seed})")
    print("per format: " + ", ".join(f"{k} {v}" for k, v in sorted(per_format.items())))
    print("outcomes:   " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    print(f"failures:   {len(failures)}")
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
