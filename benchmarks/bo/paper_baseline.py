#!/usr/bin/env python3
"""The paper's Bayesian optimiser, for the sample-efficiency benchmark.

DF-Merge (arXiv 2504.18992) tunes its coefficients with the `bayesian-optimization`
package (fmfn/BayesianOptimization). That package is not installable offline here, so
this script reproduces its optimisation loop (version 1.4.x) on top of the libraries it
delegates all the numerics to, scikit-learn and SciPy:

  * GP: GaussianProcessRegressor(kernel=Matern(nu=2.5), alpha=1e-6, normalize_y=True,
    n_restarts_optimizer=5, random_state=rs)  -- isotropic Matern 5/2 on raw inputs,
    no signal-variance hyperparameter, length scale fitted by L-BFGS-B with restarts;
  * acquisition: EI with xi = 0.01, a = mean - y_max - xi, EI = a Phi(a/std) + std phi(a/std);
  * acquisition maximisation (acq_max): 10000 uniform random points, then L-BFGS-B
    (numerical gradients) from the best random point, the incumbent and 10 random seeds
    (the most thorough variant the package has shipped), result clipped to the bounds;
  * init_points = 10 uniform random points, then n_iter = 50 suggestions; one
    np.random.RandomState(seed) drives everything, as in the package.

Usage:
  python benchmarks/bo/paper_baseline.py --function branin[-step] --seeds 1,2,3 [--init 10 --iter 50] [--jobs 2]
Prints JSON: {"function": ..., "runs": [{"seed": s, "best": [best-so-far after each evaluation], "seconds": t}]}.
"""
import argparse
import json
import os
import sys
import time
import warnings
from multiprocessing import Pool

import numpy as np
from scipy.optimize import minimize
from scipy.stats import norm
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import Matern

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from functions import FUNCTIONS, objective  # noqa: E402


def expected_improvement(x, gp, y_max, xi):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mean, std = gp.predict(x, return_std=True)
    a = mean - y_max - xi
    z = a / std
    return a * norm.cdf(z) + std * norm.pdf(z)


def acq_max(gp, y_max, y_max_params, bounds, rs, xi, n_warmup=10000, n_iter=10):
    dim = bounds.shape[0]
    neg = lambda x: -expected_improvement(x.reshape(-1, dim), gp, y_max, xi)
    x_tries = rs.uniform(bounds[:, 0], bounds[:, 1], size=(n_warmup, dim))
    ys = -neg(x_tries)
    x_max = x_tries[ys.argmax()]
    max_acq = ys.max()
    x_seeds = rs.uniform(bounds[:, 0], bounds[:, 1], size=(2 + n_iter, dim))
    x_seeds[0] = x_max
    x_seeds[1] = y_max_params
    for x_try in x_seeds:
        res = minimize(lambda x: neg(x), x_try, bounds=bounds, method="L-BFGS-B")
        if not res.success:
            continue
        if -np.squeeze(res.fun) >= max_acq:
            x_max = res.x
            max_acq = -np.squeeze(res.fun)
    return np.clip(x_max, bounds[:, 0], bounds[:, 1])


def run(args):
    name, seed, n_init, n_iter, xi = args
    f, bounds, _ = objective(name)
    bounds = np.array(bounds, dtype=float)
    t0 = time.perf_counter()
    rs = np.random.RandomState(seed)
    gp = GaussianProcessRegressor(
        kernel=Matern(nu=2.5), alpha=1e-6, normalize_y=True, n_restarts_optimizer=5, random_state=rs
    )
    X, y, best = [], [], []
    for x in rs.uniform(bounds[:, 0], bounds[:, 1], size=(n_init, bounds.shape[0])):
        X.append(x)
        y.append(f(x))
        best.append(max(y))
    for _ in range(n_iter):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gp.fit(np.array(X), np.array(y))
        i_max = int(np.argmax(y))
        x = acq_max(gp, y[i_max], X[i_max], bounds, rs, xi)
        X.append(x)
        y.append(f(x))
        best.append(max(y))
    return {"seed": seed, "best": [float(b) for b in best], "seconds": time.perf_counter() - t0}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--function", required=True, help=f"one of {', '.join(sorted(FUNCTIONS))}, or NAME-step")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--init", type=int, default=10)
    p.add_argument("--iter", type=int, default=50)
    p.add_argument("--xi", type=float, default=0.01)
    p.add_argument("--jobs", type=int, default=1)
    a = p.parse_args()
    objective(a.function)  # fail early on an unknown name
    seeds = [int(s) for s in a.seeds.split(",") if s]
    tasks = [(a.function, s, a.init, a.iter, a.xi) for s in seeds]
    if a.jobs > 1:
        with Pool(a.jobs) as pool:
            runs = pool.map(run, tasks)
    else:
        runs = [run(t) for t in tasks]
    json.dump({"function": a.function, "runs": runs}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
