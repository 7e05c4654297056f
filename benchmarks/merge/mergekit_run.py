"""Runs mergekit's `mergekit-yaml` entry point (benchmarks/merge/mergekit.ts).

The local package stores have pydantic 2.13, whose generic models refuse the
torch.Tensor type argument that mergekit (written against pydantic 2.10) gives its
Task base class; allowing arbitrary types on that base before mergekit's merge
methods are imported is all that is needed. Nothing else of mergekit is changed.

usage: mergekit_run.py CONFIG.yaml OUT [mergekit-yaml options...]
"""
import sys

import mergekit.graph

mergekit.graph.Task.model_config["arbitrary_types_allowed"] = True

from mergekit.scripts.run_yaml import main  # noqa: E402

sys.exit(main())
