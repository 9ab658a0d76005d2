"""The Perceptor: what an agent can take in besides the message itself.

Files (txt, md, pdf, csv, json, html and other plain text) are read with the vault's
text extraction and placed before the question, each in a fenced block with its name
and kind. Images go to the runner when its model carries a multimodal projector;
otherwise the error says what to configure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sahara_cli.errors import FileUnreadable, PerceptionUnsupported

# Text of one file given to the model, in characters (about 2,000 tokens).
FILE_LIMIT = 8000
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"}


@dataclass
class Perception:
    """The user's turn as the model will see it."""

    text: str
    files: list[dict[str, object]] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)


def read_file(path: Path, limit: int = FILE_LIMIT) -> tuple[str, str, bool]:
    """(text, kind, truncated) of a document, or a clear error."""
    from sahara_cli.vault.text import extract

    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise PerceptionUnsupported(
            f"{path.name} is an image", hint="Pass images with --image, not --file."
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileUnreadable(f"{path} does not exist") from None
    except IsADirectoryError:
        raise FileUnreadable(f"{path} is a directory") from None
    except OSError as exc:
        raise FileUnreadable(f"cannot read {path}: {exc.strerror or exc}") from None
    found = extract(data, path.name, limit=limit)
    if found is None:
        raise PerceptionUnsupported(
            f"{path.name} is not a document the agent can read",
            hint="Readable: txt, md, pdf, csv, json, html and other plain text.",
        )
    return found.text, found.kind, found.truncated


def perceive(
    message: str,
    *,
    files: Sequence[Path] = (),
    images: Sequence[Path] = (),
    supports_images: bool = False,
    model_name: str = "the model",
) -> Perception:
    """Combine the message with the text of ``files`` and check ``images``."""
    blocks: list[str] = []
    seen: list[dict[str, object]] = []
    for path in files:
        text, kind, truncated = read_file(path)
        note = " (truncated)" if truncated else ""
        blocks.append(f"File {path.name} ({kind}){note}:\n```\n{text}\n```")
        seen.append({"name": path.name, "kind": kind, "chars": len(text), "truncated": truncated})
    checked: list[Path] = []
    for image in images:
        if not supports_images:
            raise PerceptionUnsupported(
                f"{model_name} cannot see images: it has no multimodal projector",
                hint="Use a vision model and set model.mmproj in the agent spec "
                "to its projector GGUF (mmproj-*.gguf).",
            )
        if not image.is_file():
            raise FileUnreadable(f"{image} does not exist")
        if image.suffix.lower() not in IMAGE_SUFFIXES:
            raise PerceptionUnsupported(
                f"{image.name} is not an image (png, jpg, gif, webp or bmp)"
            )
        checked.append(image)
    text = message.strip()
    if blocks:
        text = "\n\n".join([*blocks, text])
    return Perception(text=text, files=seen, images=checked)
