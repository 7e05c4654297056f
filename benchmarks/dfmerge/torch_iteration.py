#!/usr/bin/env python3
"""PyTorch reference for one DF-Merge iteration (docs/design.md §1), on the same
models and tokenized data as benchmarks/dfmerge/bench.ts:

  for each model i: scaled θ_i(λ_i) = θ_pre + λ_i τ_i loaded into the model;
      F_i = (1/N) Σ_n Σ_y p(y|x_n) (∇ℓ(y|x_n))² + 1e-12 (per example, per choice backward)
  θ* = θ_pre + M Σ F_i λ_i τ_i / Σ F_i;  accuracy of θ* on every task's validation examples.

usage: torch_iteration.py RUN_JSON OUT_SAFETENSORS [--threads N] [--max-memory-gb G]; prints timings as JSON.
With --max-memory-gb the address space is capped (RLIMIT_AS), so running out of
memory ends in {"oom": true, ...} instead of the kernel's OOM killer.
"""
import argparse
import json
import resource
import time

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("out")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--max-memory-gb", type=float, default=0)
    a = ap.parse_args()
    if a.max_memory_gb > 0:
        cap = int(a.max_memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    try:
        run_iteration(a)
    except (MemoryError, RuntimeError) as e:
        if not isinstance(e, MemoryError) and "memory" not in str(e).lower():
            raise
        print(json.dumps({"oom": True, "error": str(e).splitlines()[0][:300],
                          "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def run_iteration(a):
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    run = json.load(open(a.run))
    model = AutoModelForCausalLM.from_pretrained(run["base"], dtype=torch.float32, attn_implementation="eager")
    model.eval()
    names = [n for n, _ in model.named_parameters()]
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    thetas = [load_file(f"{d}/model.safetensors") for d in run["models"]]
    lam = run["lambda"]
    M = len(thetas)

    def loglik(prompt, choice):
        ids = torch.tensor([prompt + choice[:-1]])
        logits = model(ids).logits[0]
        P, L = len(prompt), len(choice)
        lp = torch.log_softmax(logits[P - 1:P - 1 + L], dim=-1)
        return lp[torch.arange(L), torch.tensor(choice)].mean()

    def load(params):
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(params[n])

    t_start = time.perf_counter()
    S = {n: torch.zeros_like(base[n]) for n in names}
    W = {n: torch.zeros_like(base[n]) for n in names}
    t_fisher = t_merge = 0.0
    for i, th in enumerate(thetas):
        t0 = time.perf_counter()
        load({n: base[n] + lam[i] * (th[n] - base[n]) for n in names})
        F = {n: torch.zeros_like(base[n]) for n in names}
        exs = run["fisher"][i]
        for e in exs:
            lls = [loglik(e["prompt"], c) for c in e["choices"]]
            p = torch.softmax(torch.stack(lls).detach().double(), dim=0)
            for y, ll in enumerate(lls):
                model.zero_grad(set_to_none=True)
                ll.backward()
                with torch.no_grad():
                    for n, q in model.named_parameters():
                        F[n].add_(q.grad.square(), alpha=float(p[y]))
        t_fisher += time.perf_counter() - t0
        t0 = time.perf_counter()
        with torch.no_grad():
            for n in names:
                f = F[n] / len(exs) + 1e-12
                S[n] += f
                W[n] += f * lam[i] * (th[n] - base[n])
        t_merge += time.perf_counter() - t0
    t0 = time.perf_counter()
    merged = {n: base[n] + M * W[n] / S[n] for n in names}
    t_merge += time.perf_counter() - t0
    t0 = time.perf_counter()
    load(merged)
    acc = []
    with torch.no_grad():
        for task in run["validation"]:
            correct = 0
            for e in task:
                s = [loglik(e["prompt"], c).item() for c in e["choices"]]
                correct += int(max(range(len(s)), key=lambda k: s[k]) == e["answer"])
            acc.append(correct / len(task))
    t_eval = time.perf_counter() - t0
    save_file({n: merged[n].contiguous() for n in names}, a.out, metadata={"format": "pt"})
    print(json.dumps({"fisher_seconds": t_fisher, "merge_seconds": t_merge, "eval_seconds": t_eval,
                      "total_seconds": time.perf_counter() - t_start, "accuracy": acc, "threads": torch.get_num_threads(),
                      "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


if __name__ == "__main__":
    main()
