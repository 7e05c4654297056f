"""Test functions of the Bayesian-optimisation benchmark, in NumPy.

The same definitions as src/bo/testfunctions.ts (test/bo/testfunctions_python.test.ts
checks that both give the same values): the classic minimisation problems of Surjanovic &
Bingham's Virtual Library of Simulation Experiments, negated so that they are maximised,
and their step-valued versions

    step(x) = floor(100 · (f(x) − f_ref) / (f_opt − f_ref)) / 100

(f_ref: the function's median under uniform sampling of its box, a fixed constant), which
behave like an accuracy on 100 examples: plateaus of 1/100, 1 only at the optimum.
"""
import math

import numpy as np

STEP_GRID = 100


def branin(x):
    a, b, c, r, s, t = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    x1, x2 = x[0], x[1]
    return -(a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s)


H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
H3_A = np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]])
H3_P = 1e-4 * np.array([[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]])
H6_A = np.array([
    [10, 3, 17, 3.5, 1.7, 8],
    [0.05, 10, 17, 0.1, 8, 14],
    [3, 3.5, 1.7, 10, 17, 8],
    [17, 8, 0.05, 10, 0.1, 14],
])
H6_P = 1e-4 * np.array([
    [1312, 1696, 5569, 124, 8283, 5886],
    [2329, 4135, 8307, 3736, 1004, 9991],
    [2348, 1451, 3522, 2883, 3047, 6650],
    [4047, 8828, 8732, 5743, 1091, 381],
])


def _hartmann(A, P, x):
    x = np.asarray(x, dtype=float)
    return float(np.sum(H_ALPHA * np.exp(-np.sum(A * (x - P) ** 2, axis=1))))


def hartmann3(x):
    return _hartmann(H3_A, H3_P, x)


def hartmann6(x):
    return _hartmann(H6_A, H6_P, x)


def levy(x):
    w = 1 + (np.asarray(x, dtype=float) - 1) / 4
    head = math.sin(math.pi * w[0]) ** 2
    mid = np.sum((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(math.pi * w[:-1] + 1) ** 2))
    tail = (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)
    return -float(head + mid + tail)


def ackley(x):
    x = np.asarray(x, dtype=float)
    d = x.size
    s1 = math.sqrt(float(np.sum(x * x)) / d)
    s2 = float(np.sum(np.cos(2 * math.pi * x))) / d
    return -(-20 * math.exp(-0.2 * s1) - math.exp(s2) + 20 + math.e)


def styblinski_tang(x):
    x = np.asarray(x, dtype=float)
    return -float(0.5 * np.sum(x**4 - 16 * x**2 + 5 * x))


# name: (f, bounds, optimum value of the maximised f, f_ref: median under uniform sampling). Keep in step with
# src/bo/testfunctions.ts.
FUNCTIONS = {
    "branin": (branin, [(-5.0, 10.0), (0.0, 15.0)], -0.39788735772973816, -35.16),
    "hartmann3": (hartmann3, [(0.0, 1.0)] * 3, 3.86278214782076, 0.5534),
    "levy4": (levy, [(-10.0, 10.0)] * 4, 0.0, -37.16),
    "ackley5": (ackley, [(-32.768, 32.768)] * 5, 0.0, -21.16),
    "hartmann6": (hartmann6, [(0.0, 1.0)] * 6, 3.32236801141551, 0.1040),
    "styblinskitang8": (styblinski_tang, [(-5.0, 5.0)] * 8, 39.16616570377142 * 8, 43.52),
}


def stepped(f, opt, ref):
    """The step-valued version of f (see the module docstring)."""
    return lambda x: math.floor(STEP_GRID * (f(x) - ref) / (opt - ref)) / STEP_GRID


def objective(name):
    """(f, bounds, optimum) for a benchmark function name; 'NAME-step' is the step-valued version."""
    base = name[:-5] if name.endswith("-step") else name
    if base not in FUNCTIONS:
        raise SystemExit(f"unknown function {name!r} (known: {', '.join(sorted(FUNCTIONS))}, each also as NAME-step)")
    f, bounds, opt, ref = FUNCTIONS[base]
    if name.endswith("-step"):
        return stepped(f, opt, ref), bounds, 1.0
    return f, bounds, opt
