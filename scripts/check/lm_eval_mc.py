#!/usr/bin/env python3
"""Multiple-choice accuracy of lm-evaluation-harness (HF backend) on a local
JSONL task and a tiny local model, for test/model/lm_eval.test.ts:

    .venv/bin/python scripts/check/lm_eval_mc.py MODEL_DIR TASK.jsonl OUT.json [TOKENIZER_DIR [MAX_POSITIONS]]

With TOKENIZER_DIR, first builds MODEL_DIR: a random 1-layer Llama (hidden 16,
float32, seed 0, max_position_embeddings MAX_POSITIONS or 256, which is also
lm-eval's max_length, beyond which it cuts prompts from the left) whose
vocabulary is that tokenizer's (tokenizer.json and tokenizer_config.json copied in). Then runs lm-eval offline (HF_HUB_OFFLINE)
on a task {doc_to_text: prompt, doc_to_choice: choices, doc_to_target: answer,
target_delimiter " "} and writes {acc, acc_norm, docs: [{lls, acc, acc_norm}]}.
"""
import json
import os
import shutil
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def build_model(model_dir, tokenizer_dir, max_positions):
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=max_positions,
                      tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1.0 + 0.1 * torch.randn_like(p) if name.endswith("norm.weight") else 0.5 * torch.randn_like(p))
    model.save_pretrained(model_dir, safe_serialization=True)
    for f in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(os.path.join(tokenizer_dir, f), os.path.join(model_dir, f))


def main():
    model_dir, task_file, out_file = sys.argv[1:4]
    if len(sys.argv) > 4:
        build_model(model_dir, sys.argv[4], int(sys.argv[5]) if len(sys.argv) > 5 else 256)
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "dfm_mc.yaml"), "w") as f:
            json.dump({  # YAML is a superset of JSON
                "task": "dfm_mc", "dataset_path": "json",
                "dataset_kwargs": {"data_files": {"test": os.path.abspath(task_file)}},
                "test_split": "test", "output_type": "multiple_choice", "doc_to_text": "prompt",
                "doc_to_choice": "choices", "doc_to_target": "answer", "target_delimiter": " ",
                "metric_list": [{"metric": "acc"}, {"metric": "acc_norm"}],
            }, f)
        lm = HFLM(pretrained=model_dir, device="cpu", dtype="float32", batch_size=1)
        res = lm_eval.simple_evaluate(model=lm, tasks=["dfm_mc"], task_manager=TaskManager(include_path=d),
                                      log_samples=True, num_fewshot=0)
    r = res["results"]["dfm_mc"]
    docs = sorted(res["samples"]["dfm_mc"], key=lambda s: s["doc_id"])
    out = {"acc": r["acc,none"], "acc_norm": r["acc_norm,none"],
           "docs": [{"lls": [float(x[0][0]) for x in s["resps"]], "acc": s["acc"], "acc_norm": s["acc_norm"]} for s in docs]}
    with open(out_file, "w") as f:
        json.dump(out, f, indent=1)
    print("lm-eval acc", out["acc"], "acc_norm", out["acc_norm"])


if __name__ == "__main__":
    main()
