"""What a training job is: its LoRA shape, its DP budget and the loop's settings.

Plain dataclasses, checked when made (a value out of range raises
:class:`~sahara_cli.errors.ComputeSpecInvalid`, a usage error). :meth:`TrainSpec.hparams`
is the canonical dictionary of every setting that changes the trained weights, and
:meth:`TrainSpec.hparams_hash` its keccak-256 over canonical JSON (sorted keys, no
spaces): the hash a training record carries on chain and a checkpoint carries on disk.
The base model is not a hyper-parameter (a record names it as its own asset); a
checkpoint checks it, and the data, separately.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sahara_cli.errors import ComputeSpecInvalid
from sahara_cli.identity.keys import keccak256

#: Ranges a spec is checked against (inclusive).
MAX_RANK = 1024
MAX_ALPHA = 65536
ACCOUNTANTS = ("prv", "rdp")
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
#: peft's name for every linear layer but the output layer.
ALL_LINEAR = "all-linear"
_LORA_KEYS = ("r", "alpha", "dropout", "targets")


def _bad(message: str, hint: str | None = None) -> ComputeSpecInvalid:
    return ComputeSpecInvalid(message, hint=hint)


def _number(key: str, text: str, kind: type[int] | type[float]) -> float:
    try:
        value = kind(text)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise _bad(f"LoRA {key}={text!r} is not {noun}") from None
    if not math.isfinite(value):
        raise _bad(f"LoRA {key}={text!r} is not a finite number")
    return value


@dataclass(frozen=True)
class LoraSpec:
    """The LoRA adapter: rank ``r``, scale ``alpha`` (the update is ``alpha / r * B @ A``),
    dropout on the adapter's input, and the names of the modules it wraps (None: peft's
    default for the architecture, e.g. ``q_proj`` and ``v_proj`` for Llama;
    ``("all-linear",)``: every linear layer but the output layer)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.r, bool) or not isinstance(self.r, int) or not 1 <= self.r <= MAX_RANK:
            raise _bad(f"LoRA rank r={self.r!r} is out of range (1 to {MAX_RANK})")
        if (
            isinstance(self.alpha, bool)
            or not isinstance(self.alpha, int)
            or not 1 <= self.alpha <= MAX_ALPHA
        ):
            raise _bad(f"LoRA alpha={self.alpha!r} is out of range (1 to {MAX_ALPHA})")
        if not (isinstance(self.dropout, int | float) and 0.0 <= self.dropout < 1.0):
            raise _bad(f"LoRA dropout={self.dropout!r} is out of range (0 to below 1)")
        if self.target_modules is not None:
            if not self.target_modules:
                raise _bad("LoRA targets is empty", hint="Leave it out for the model's default.")
            if ALL_LINEAR in self.target_modules and len(self.target_modules) > 1:
                raise _bad(f"LoRA targets {ALL_LINEAR} stands alone")
            for name in self.target_modules:
                if name != ALL_LINEAR and not _MODULE_NAME.match(name):
                    raise _bad(f"LoRA target {name!r} is not a module name")

    @classmethod
    def parse(cls, text: str) -> LoraSpec:
        """Read ``"r=8,alpha=16[,dropout=0.05][,targets=q_proj+v_proj]"`` (any order;
        left-out keys take their defaults)."""
        hint = "Write it as r=8,alpha=16[,dropout=0.05][,targets=q_proj+v_proj]."
        values: dict[str, str] = {}
        for raw in text.split(","):
            part = raw.strip()
            if not part:
                raise ComputeSpecInvalid(f"LoRA spec {text!r} has an empty item", hint=hint)
            key, sep, value = part.partition("=")
            key, value = key.strip().lower(), value.strip()
            if not sep or not value:
                raise ComputeSpecInvalid(f"LoRA item {part!r} is not key=value", hint=hint)
            if key not in _LORA_KEYS:
                raise ComputeSpecInvalid(
                    f"LoRA key {key!r} is unknown (known: {', '.join(_LORA_KEYS)})", hint=hint
                )
            if key in values:
                raise ComputeSpecInvalid(f"LoRA key {key!r} is given twice", hint=hint)
            values[key] = value
        targets = None
        if "targets" in values:
            targets = tuple(t.strip() for t in values["targets"].split("+"))
        return cls(
            r=int(_number("r", values["r"], int)) if "r" in values else cls.r,
            alpha=int(_number("alpha", values["alpha"], int)) if "alpha" in values else cls.alpha,
            dropout=_number("dropout", values["dropout"], float)
            if "dropout" in values
            else cls.dropout,
            target_modules=targets,
        )

    def text(self) -> str:
        """The string :meth:`parse` reads back into this spec."""
        out = f"r={self.r},alpha={self.alpha}"
        if self.dropout:
            out += f",dropout={self.dropout}"
        if self.target_modules:
            out += ",targets=" + "+".join(self.target_modules)
        return out


@dataclass(frozen=True)
class DPSpec:
    """DP-SGD's budget: reach at most ``(epsilon, delta)`` over the planned steps, clipping
    each example's gradient to ``max_grad_norm``; ``accountant`` is opacus's (``prv``, its
    default, or ``rdp``)."""

    epsilon: float
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    accountant: str = "prv"

    def __post_init__(self) -> None:
        if not (isinstance(self.epsilon, int | float) and 0 < self.epsilon <= 1e4):
            raise _bad(f"DP epsilon={self.epsilon!r} is out of range (above 0, at most 10000)")
        if not (isinstance(self.delta, int | float) and 0 < self.delta < 1):
            raise _bad(f"DP delta={self.delta!r} is out of range (between 0 and 1)")
        if not (isinstance(self.max_grad_norm, int | float) and 0 < self.max_grad_norm < 1e6):
            raise _bad(f"DP max_grad_norm={self.max_grad_norm!r} must be above 0")
        if self.accountant not in ACCOUNTANTS:
            raise _bad(
                f"DP accountant {self.accountant!r} is unknown (known: {', '.join(ACCOUNTANTS)})"
            )


@dataclass(frozen=True)
class TrainSpec:
    """One fine-tuning job: the base model folder (a transformers causal LM saved with
    ``save_pretrained``, with its tokenizer), the adapter, the DP budget (None: plain
    training) and the loop. ``max_steps`` caps the steps of ``epochs`` passes."""

    base: Path
    lora: LoraSpec = field(default_factory=LoraSpec)
    dp: DPSpec | None = None
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 8
    learning_rate: float = 2e-4
    seq_len: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        def whole(name: str, value: object, low: int, high: int) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise _bad(f"{name}={value!r} is out of range ({low} to {high})")

        whole("epochs", self.epochs, 1, 100_000)
        if self.max_steps is not None:
            whole("max_steps", self.max_steps, 1, 100_000_000)
        whole("batch_size", self.batch_size, 1, 65_536)
        whole("seq_len", self.seq_len, 2, 1_048_576)
        whole("seed", self.seed, 0, 2**63 - 1)
        if not (
            isinstance(self.learning_rate, int | float)
            and math.isfinite(self.learning_rate)
            and 0 < self.learning_rate <= 10
        ):
            raise _bad(
                f"learning_rate={self.learning_rate!r} is out of range (above 0, at most 10)"
            )

    def hparams(self) -> dict[str, Any]:
        """Every setting that changes the trained weights, as canonical JSON values."""
        dp = None
        if self.dp is not None:
            dp = {
                "epsilon": float(self.dp.epsilon),
                "delta": float(self.dp.delta),
                "max_grad_norm": float(self.dp.max_grad_norm),
                "accountant": self.dp.accountant,
            }
        return {
            "method": "lora",
            "lora": {
                "r": self.lora.r,
                "alpha": self.lora.alpha,
                "dropout": float(self.lora.dropout),
                "target_modules": list(self.lora.target_modules)
                if self.lora.target_modules
                else None,
            },
            "dp": dp,
            "epochs": self.epochs,
            "max_steps": self.max_steps,
            "batch_size": self.batch_size,
            "learning_rate": float(self.learning_rate),
            "seq_len": self.seq_len,
            "seed": self.seed,
            "optimizer": "adamw",
        }

    def hparams_json(self) -> str:
        """:meth:`hparams` as canonical JSON: sorted keys, no spaces."""
        return json.dumps(self.hparams(), sort_keys=True, separators=(",", ":"))

    def hparams_hash(self) -> bytes:
        """keccak-256 of :meth:`hparams_json` (32 bytes)."""
        return keccak256(self.hparams_json().encode())
