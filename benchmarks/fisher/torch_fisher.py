#!/usr/bin/env python3
"""PyTorch reference for the Fisher benchmark: the same per-example backward
passes dfmerge does, on the same model and tokenized examples.

    python torch_fisher.py MODEL_DIR EXAMPLES_JSON OUT_SAFETENSORS [--mode expected] [--threads N] [--skip-eval]

For each example: ℓ(y|x) = mean log-prob of choice y's tokens given the prompt
(one forward per choice, graph kept), p = softmax over choices of ℓ, then per
choice y: zero grads, ℓ(y|x).backward(), F += p(y|x)·grad² (per example and
choice; never a batch-summed gradient). F = F/N + 1e-12. Also times forward-only
scoring (torch.no_grad) of the same sequences, unless --skip-eval. Prints one
JSON line of timings.
"""
import argparse
import json
import time

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("examples")
    ap.add_argument("out")
    ap.add_argument("--mode", default="expected", choices=["expected", "empirical"])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--skip-eval", action="store_true")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    params = [(n, p) for n, p in model.named_parameters()]
    examples = json.load(open(a.examples))
    tokens = sum(len(e["prompt"]) + len(c) for e in examples for c in e["choices"])

    def loglik(prompt, choice):
        ids = torch.tensor([prompt + choice[:-1]])
        logits = model(ids).logits[0]
        P, L = len(prompt), len(choice)
        lp = torch.log_softmax(logits[P - 1:P - 1 + L].float(), dim=-1)
        return lp[torch.arange(L), torch.tensor(choice)].mean()

    # Warm-up (first-call allocations, thread pools), then forward-only scoring.
    with torch.no_grad():
        for e in examples[:2]:
            for c in e["choices"]:
                loglik(e["prompt"], c)
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.no_grad():
        for e in ([] if a.skip_eval else examples):
            for c in e["choices"]:
                loglik(e["prompt"], c)
    t_eval, c_eval = time.perf_counter() - t0, time.process_time() - c0

    # Fisher.
    fisher = {n: torch.zeros_like(p) for n, p in params}
    t0, c0 = time.perf_counter(), time.process_time()
    for e in examples:
        lls = [loglik(e["prompt"], c) for c in e["choices"]]
        p = torch.softmax(torch.stack(lls).detach().double(), dim=0)
        for y, ll in enumerate(lls):
            w = float(p[y]) if a.mode == "expected" else (1.0 if y == e["answer"] else 0.0)
            if w == 0.0:
                continue
            model.zero_grad(set_to_none=True)
            ll.backward()  # each choice has its own graph
            with torch.no_grad():
                for n, q in params:
                    fisher[n].add_(q.grad.square(), alpha=w)
    t_fisher, c_fisher = time.perf_counter() - t0, time.process_time() - c0
    n = len(examples)
    save_file({k: (v / n + 1e-12).contiguous() for k, v in fisher.items()}, a.out, metadata={"format": "pt"})
    print(json.dumps({"tokens": tokens, "fisher_seconds": t_fisher, "eval_seconds": t_eval,
                      "fisher_cpu_seconds": c_fisher, "eval_cpu_seconds": c_eval,
                      "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
