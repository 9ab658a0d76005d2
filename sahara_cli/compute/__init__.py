"""Compute: fine-tuning models on local data (LoRA through peft, DP-SGD through opacus).

- ``spec``: the plain dataclasses of a training job (:class:`~.spec.TrainSpec`,
  :class:`~.spec.LoraSpec`, :class:`~.spec.DPSpec`) and their hyper-parameter hash.
- ``train``: :func:`~.train.train_lora`, the training loop, with its step reports and outcome.
- ``textdata``: the base model's loading and checks, and texts cut into token blocks.
- ``checkpoints``: atomic checkpoints of a run and their checks on resume.
- ``tiny``: tiny random causal LMs with a tokenizer trained on given texts, written on the
  spot for tests, benchmarks and the demo (nothing downloads).

This package may import ``vault/``, ``protocol/``, ``node/client``, ``identity/`` and the
modules at the bottom (``errors``, ``results``, ``fsutil``), never ``commands/`` or the
TUI. Nothing heavy is imported at module import time: torch, transformers, peft and opacus
are imported inside the functions that use them, so that the CLI starts fast.
"""
