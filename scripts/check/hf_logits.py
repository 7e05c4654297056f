"""Loads a dfmerge-written checkpoint folder with transformers and prints, as JSON,
the token ids of TEXT (AutoTokenizer, with BOS) and the logits of every position
(AutoModelForCausalLM, float32, eager attention).

    python scripts/check/hf_logits.py DIR TEXT

Used by test/train/hf_compat.test.ts when a Python with torch + transformers is
available (.venv/bin/python or $DFMERGE_PYTHON) to check that transformers loads
what the trainer saves and computes the same logits as the native runtime.
"""
import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main() -> None:
    path, text = sys.argv[1], sys.argv[2]
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    ids = tok(text).input_ids
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    json.dump({"ids": ids, "logits": logits.flatten().tolist(), "class": type(model).__name__}, sys.stdout)


if __name__ == "__main__":
    main()
