#!/usr/bin/env python3
"""lm-evaluation-harness (HF backend) side of benchmarks/eval/throughput.ts:
multiple-choice evaluation of a local model folder on a local JSONL task, timed.

    python lm_eval_throughput.py MODEL_DIR TASK.jsonl --threads N --batch-size B

The task is {doc_to_text: prompt, doc_to_choice: choices, doc_to_target: answer,
target_delimiter " "} (what `dfmerge eval --scoring sum` scores). The model is
loaded once (timed apart), then `simple_evaluate` is timed, after a warm-up
evaluation of a 2-example copy of the task. Prints one JSON line: load and
evaluation seconds (wall and CPU), acc, acc_norm, per-document predictions.
"""
import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def task_yaml(d, name, data_file):
    with open(os.path.join(d, f"{name}.yaml"), "w") as f:
        json.dump({  # YAML is a superset of JSON
            "task": name, "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": os.path.abspath(data_file)}},
            "test_split": "test", "output_type": "multiple_choice", "doc_to_text": "prompt",
            "doc_to_choice": "choices", "doc_to_target": "answer", "target_delimiter": " ",
            "metric_list": [{"metric": "acc"}, {"metric": "acc_norm"}],
        }, f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("task")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=1)
    a = ap.parse_args()
    import torch
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    with tempfile.TemporaryDirectory() as d:
        warm = os.path.join(d, "warm.jsonl")
        with open(a.task) as src, open(warm, "w") as dst:
            dst.writelines(src.readlines()[:2])
        task_yaml(d, "dfm_bench", a.task)
        task_yaml(d, "dfm_warm", warm)
        t0, c0 = time.perf_counter(), time.process_time()
        lm = HFLM(pretrained=a.model, device="cpu", dtype="float32", batch_size=a.batch_size)
        load_s, load_cpu = time.perf_counter() - t0, time.process_time() - c0
        tm = TaskManager(include_path=d)
        lm_eval.simple_evaluate(model=lm, tasks=["dfm_warm"], task_manager=tm, num_fewshot=0)
        t0, c0 = time.perf_counter(), time.process_time()
        res = lm_eval.simple_evaluate(model=lm, tasks=["dfm_bench"], task_manager=tm, num_fewshot=0, log_samples=True)
        eval_s, eval_cpu = time.perf_counter() - t0, time.process_time() - c0
    r = res["results"]["dfm_bench"]
    docs = sorted(res["samples"]["dfm_bench"], key=lambda s: s["doc_id"])
    preds = [max(range(len(s["resps"])), key=lambda j: float(s["resps"][j][0][0])) for s in docs]
    print(json.dumps({"load_seconds": load_s, "load_cpu_seconds": load_cpu, "eval_seconds": eval_s, "eval_cpu_seconds": eval_cpu,
                      "acc": r["acc,none"], "acc_norm": r["acc_norm,none"], "predictions": preds,
                      "threads": torch.get_num_threads(), "batch_size": a.batch_size, "lm_eval": lm_eval.__version__ if hasattr(lm_eval, "__version__") else "?",
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
