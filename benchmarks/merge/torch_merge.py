"""PyTorch baseline for benchmarks/merge: the same merges, tensor by tensor, as a
straightforward PyTorch implementation does them (safe_open, f32 math, cast, save).

usage: torch_merge.py METHOD BASE OUT MODEL...   prints {"seconds": s} as JSON
"""
import json
import os
import sys
import time

import torch
from safetensors import safe_open
from safetensors.torch import save_file


def shard_files(folder):
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            wm = json.load(f)["weight_map"]
        return sorted(set(wm.values())), wm
    return ["model.safetensors"], None


def merge(method, base, models, density=0.5, seed=0):
    w = 1.0 / len(models)
    if method == "linear":
        return sum(w * m for m in models) / (w * len(models))
    taus = [m - base for m in models]
    if method == "task_arithmetic":
        return base + sum(w * t for t in taus)
    if method in ("dare_linear", "dare_ties"):
        g = torch.Generator().manual_seed(seed)
        taus = [t * torch.bernoulli(torch.full_like(t, density), generator=g) / density for t in taus]
        if method == "dare_linear":
            return base + sum(w * t for t in taus)
    if method == "ties":
        trimmed = []
        for t in taus:
            k = int(round(density * t.numel()))
            flat = t.abs().flatten()
            if k == 0:
                trimmed.append(torch.zeros_like(t))
                continue
            thr = torch.kthvalue(flat, flat.numel() - k + 1).values
            trimmed.append(torch.where(t.abs() >= thr, t, torch.zeros_like(t)))
        taus = trimmed
    weighted = torch.stack([w * t for t in taus])
    sign = torch.where(weighted.sum(0) >= 0, 1.0, -1.0)
    agree = torch.sign(weighted) == sign
    mixed = (weighted * agree).sum(0)
    div = (w * agree).sum(0)
    div = torch.where(div == 0, torch.ones_like(div), div)
    return base + mixed / div


def main():
    method, base_dir, out_dir, *model_dirs = sys.argv[1:]
    torch.set_num_threads(os.cpu_count())
    os.makedirs(out_dir, exist_ok=True)
    t0 = time.perf_counter()
    shards, _ = shard_files(base_dir)
    for shard in shards:
        out = {}
        with safe_open(os.path.join(base_dir, shard), "pt") as fb:
            opened = [safe_open(os.path.join(d, shard), "pt") for d in model_dirs]
            for name in fb.keys():
                b = fb.get_tensor(name)
                dtype = b.dtype
                ms = [o.get_tensor(name).float() for o in opened]
                out[name] = merge(method, b.float(), ms).to(dtype)
        save_file(out, os.path.join(out_dir, shard), metadata={"format": "pt"})
    print(json.dumps({"seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
