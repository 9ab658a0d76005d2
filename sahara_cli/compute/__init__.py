"""Compute: training and merging models on licensed data, recorded through the SAPs.

- ``spec``: the plain dataclasses of a training job (:class:`~.spec.TrainSpec`,
  :class:`~.spec.LoraSpec`, :class:`~.spec.DPSpec`) and their hyper-parameter hash.
- ``train``: :func:`~.train.train_lora`, the training loop, with its step reports and outcome.
- ``textdata``: the base model's loading and checks, and texts cut into token blocks.
- ``checkpoints``: atomic checkpoints of a run and their checks on resume.
- ``merge`` (with ``merge_methods``, ``merge_adapters``, ``merge_inputs``, ``fisher`` and
  ``safetensors_io``): :func:`~.merge.merge_models`, average, task arithmetic, TIES and
  Fisher merging of full models and LoRA adapters.
- ``data``: the chain's licence check of a job's inputs and their text read from the vault.
- ``jobs``, ``workflow``, ``results``: a home's jobs, the workflows behind
  ``sahara compute`` and their typed results.
- ``tiny``: tiny random causal LMs with a tokenizer trained on given texts, written on the
  spot for tests, benchmarks and the demo (nothing downloads).

This package may import ``vault/``, ``protocol/``, ``node/client``, ``identity/`` and the
modules at the bottom (``errors``, ``results``, ``fsutil``), never ``commands/`` or the
TUI. Nothing heavy is imported at module import time: torch, transformers, peft and opacus
are imported inside the functions that use them, so that the CLI starts fast.
"""
