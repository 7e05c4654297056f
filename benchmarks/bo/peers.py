#!/usr/bin/env python3
"""optuna's samplers on the benchmark functions, for the sample-efficiency benchmark.

Runs, per seed, one optuna study (direction "maximize") with
  gp      optuna.samplers.GPSampler(seed=s, n_startup_trials=N_INIT)  -- the peer users reach for:
          ARD Matern 5/2, fitted noise, log-EI, its own acquisition optimiser;
  tpe     optuna.samplers.TPESampler(seed=s, n_startup_trials=N_INIT);
  random  optuna.samplers.RandomSampler(seed=s);
each with every other setting at its default, for N_INIT + N_ITER trials on the functions
of functions.py (NAME or NAME-step).

Usage:
  python benchmarks/bo/peers.py --sampler gp --function branin --seeds 1,2,3 [--init 10 --iter 50] [--jobs 2]
    prints JSON {"sampler":..., "function":..., "optuna": version, "runs": [{"seed": s, "best": [...], "seconds": t}]}
  python benchmarks/bo/peers.py --sampler gp --external 4 --seed 1 [--init 10 --iter 50]
    one study over [0, 1]^4 whose objective is evaluated by the parent process: writes a line
    {"x": [...]} per trial to stdout and reads {"y": value} (or {"y": null}: failed) from stdin,
    then a final line {"done": true} (benchmarks/bo/zoo_objective.ts drives it).
  python benchmarks/bo/peers.py --eval < points.jsonl
    reads lines {"function": NAME, "x": [...]} and prints one line {"y": f(x)} per input line
    (checks that these definitions agree with src/bo/testfunctions.ts).
"""
import argparse
import json
import os
import sys
import time
from multiprocessing import Pool

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from functions import objective  # noqa: E402


def make_sampler(optuna, name, seed, n_init):
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_init)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_init)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise SystemExit(f"unknown sampler {name!r} (gp, tpe, random)")


def run(args):
    sampler_name, fname, seed, n_init, n_iter = args
    import optuna
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    f, bounds, _ = objective(fname)
    study = optuna.create_study(direction="maximize", sampler=make_sampler(optuna, sampler_name, seed, n_init))
    best = []
    t0 = time.perf_counter()

    def obj(trial):
        x = [trial.suggest_float(f"x{d}", lo, hi) for d, (lo, hi) in enumerate(bounds)]
        y = float(f(x))
        best.append(y if not best else max(best[-1], y))
        return y

    study.optimize(obj, n_trials=n_init + n_iter)
    return {"seed": seed, "best": best, "seconds": time.perf_counter() - t0}


def run_external(sampler_name, dim, seed, n_init, n_iter):
    import optuna
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize", sampler=make_sampler(optuna, sampler_name, seed, n_init))

    def obj(trial):
        x = [trial.suggest_float(f"x{d}", 0.0, 1.0) for d in range(dim)]
        sys.stdout.write(json.dumps({"x": x}) + "\n")
        sys.stdout.flush()
        line = sys.stdin.readline()
        if not line:
            raise SystemExit("parent closed stdin")
        y = json.loads(line)["y"]
        return float("nan") if y is None else float(y)

    study.optimize(obj, n_trials=n_init + n_iter)
    sys.stdout.write(json.dumps({"done": True}) + "\n")


def evaluate_stdin():
    for line in sys.stdin:
        if not line.strip():
            continue
        q = json.loads(line)
        f, _, _ = objective(q["function"])
        sys.stdout.write(json.dumps({"y": float(f(q["x"]))}) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--eval", action="store_true")
    p.add_argument("--sampler", default="gp")
    p.add_argument("--function")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--init", type=int, default=10)
    p.add_argument("--iter", type=int, default=50)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--external", type=int, metavar="DIM")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    if a.eval:
        return evaluate_stdin()
    if a.external:
        return run_external(a.sampler, a.external, a.seed, a.init, a.iter)
    if not a.function:
        raise SystemExit("--function is required (or --eval)")
    objective(a.function)  # fail early on an unknown name
    import optuna

    seeds = [int(s) for s in a.seeds.split(",") if s]
    tasks = [(a.sampler, a.function, s, a.init, a.iter) for s in seeds]
    if a.jobs > 1:
        with Pool(a.jobs) as pool:
            runs = pool.map(run, tasks)
    else:
        runs = [run(t) for t in tasks]
    json.dump({"sampler": a.sampler, "function": a.function, "optuna": optuna.__version__, "runs": runs}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
