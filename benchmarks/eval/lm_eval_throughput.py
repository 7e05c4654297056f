#!/usr/bin/env python3
"""lm-evaluation-harness (HF backend, CPU, float32, batch size 1, offline) on a
local JSONL multiple-choice task, timed, for benchmarks/eval/throughput.ts:

    python lm_eval_throughput.py MODEL_DIR TASK.jsonl [--threads N]

The task is {doc_to_text: prompt, doc_to_choice: choices, doc_to_target:
answer, target_delimiter " "} (what `dfmerge eval` does by default). Model
loading is not timed; simple_evaluate (requests, forward passes, metrics) is.
Prints one JSON line {seconds, cpu_seconds, acc, acc_norm, docs, threads}.
"""
import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("task")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    import torch
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "dfm_tp.yaml"), "w") as f:
            json.dump({  # YAML is a superset of JSON
                "task": "dfm_tp", "dataset_path": "json",
                "dataset_kwargs": {"data_files": {"test": os.path.abspath(a.task)}},
                "test_split": "test", "output_type": "multiple_choice", "doc_to_text": "prompt",
                "doc_to_choice": "choices", "doc_to_target": "answer", "target_delimiter": " ",
                "metric_list": [{"metric": "acc"}, {"metric": "acc_norm"}],
            }, f)
        lm = HFLM(pretrained=a.model, device="cpu", dtype="float32", batch_size=1)
        tm = TaskManager(include_path=d)
        t0, c0 = time.perf_counter(), time.process_time()
        res = lm_eval.simple_evaluate(model=lm, tasks=["dfm_tp"], task_manager=tm, num_fewshot=0)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    r = res["results"]["dfm_tp"]
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "acc": r.get("acc,none"), "acc_norm": r.get("acc_norm,none"),
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
