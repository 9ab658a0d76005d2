"""sahara model: the models agents run (GGUF files and transformers checkpoints)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sahara_cli.commands._output import returns
from sahara_cli.commands._protocol import IdOption, PasswordFileOption, table
from sahara_cli.commands._state import AppState, state
from sahara_cli.errors import UsageError
from sahara_cli.units import human_size

if TYPE_CHECKING:
    from sahara_cli.agent.model_results import ModelView
    from sahara_cli.agent.runners.model_store import ModelEntry, ModelStore

app = typer.Typer(
    help="Keep the models agents run: pull from Hugging Face, add files, pick a default.",
    no_args_is_help=True,
)

NameOption = Annotated[
    str | None,
    typer.Option(
        "--name", help="Name in the store (default: the file or folder name).", show_default=False
    ),
]


def _store(st: AppState) -> ModelStore:
    from sahara_cli.agent.runners.model_store import ModelStore

    return ModelStore(st.home.require().root)


def _view(entry: ModelEntry, default: str | None) -> ModelView:
    from sahara_cli.agent.model_results import ModelView

    return ModelView.of(entry, default)


def _render_entry(data: ModelView) -> Any:
    facts = data.facts
    return table(
        {
            "model": data.name + ("  (default)" if data.default else ""),
            "runner": data.runner,
            "path": data.path + ("  (linked)" if data.linked else ""),
            "size": human_size(data.size),
            "architecture": facts.get("architecture"),
            "title": facts.get("title"),
            "context": facts.get("context_length"),
            "chat template": "yes" if facts.get("chat_template") else "no",
            "sha256": data.sha256 or None,
            "content id": data.cid or None,
            "source": data.source,
            "asset": f"#{data.asset_id}" if data.asset_id is not None else None,
        }
    )


@app.command("add")
@returns("sahara_cli.agent.model_results:ModelView")
def add(
    path: Annotated[
        Path,
        typer.Argument(
            help="A .gguf file (llama runner) or a save_pretrained directory (torch runner).",
            show_default=False,
        ),
    ],
    name: NameOption = None,
    runner: Annotated[
        str | None,
        typer.Option(
            "--runner",
            help="llama or torch (default: llama for a file, torch for a directory).",
            show_default=False,
        ),
    ] = None,
    link: Annotated[
        bool, typer.Option("--link", help="Keep the model where it is instead of copying it.")
    ] = False,
) -> None:
    """Check a model, compute its content id and put it in the store."""
    from sahara_cli.agent.runners.base import RUNNER_KINDS
    from sahara_cli.agent.runners.model_store import tree_bytes

    if runner is not None and runner not in RUNNER_KINDS:
        raise UsageError(f"--runner {runner!r} is not one of: {', '.join(RUNNER_KINDS)}")
    st = state()
    store = _store(st)
    total = tree_bytes(path) if path.exists() else 0
    with st.output.progress("Hashing", total) as advance:
        entry = store.add(path, name=name, runner=runner, link=link, progress=advance)
    data = _view(entry, store.default)
    st.output.note(f"Added model '{entry.name}' ({entry.runner}), content id {entry.cid}")
    st.output.result(data, _render_entry(data))


DEMO_MODEL = "tiny-demo"


@app.command("demo")
@returns("sahara_cli.agent.model_results:ModelView")
def demo(
    name: Annotated[
        str | None,
        typer.Option("--name", help="Name in the store.", show_default=DEMO_MODEL),
    ] = None,
    runner: Annotated[
        str,
        typer.Option(
            "--runner",
            help="llama (a GGUF file) or torch (a transformers folder, to train on).",
        ),
    ] = "llama",
) -> None:
    """Add the tiny demo model: random weights, for trying sahara offline (answers are noise)."""
    import tempfile

    from sahara_cli.agent.runners.tiny_models import write_tiny_gguf, write_tiny_transformers
    from sahara_cli.errors import UsageError

    if runner not in ("llama", "torch"):
        raise UsageError(f"--runner {runner!r} is not llama or torch")
    name = name or (DEMO_MODEL if runner == "llama" else f"{DEMO_MODEL}-torch")
    st = state()
    store = _store(st)
    existing = {e.name: e for e in store.list()}
    if name in existing:
        entry = existing[name]
    else:
        with tempfile.TemporaryDirectory(prefix="sahara-demo-model-") as tmp:
            path = (
                write_tiny_gguf(Path(tmp) / f"{name}.gguf")
                if runner == "llama"
                else write_tiny_transformers(Path(tmp) / name)
            )
            entry = store.add(
                path, name=name, runner=runner, source="tiny demo model (random weights)"
            )
    data = _view(entry, store.default)
    st.output.note(
        f"'{entry.name}' is a tiny model with random weights: its answers are noise. "
        "Pull a real one with 'sahara model pull REPO FILE'."
    )
    st.output.result(data, _render_entry(data))


@app.command("pull")
@returns("sahara_cli.agent.model_results:ModelView")
def pull(
    repo: Annotated[
        str, typer.Argument(help="Hugging Face repository, e.g. owner/name.", show_default=False)
    ],
    filename: Annotated[
        str,
        typer.Argument(help="File in the repository, e.g. model.Q4_K_M.gguf.", show_default=False),
    ],
    name: NameOption = None,
    revision: Annotated[
        str | None,
        typer.Option(
            "--revision",
            help="Branch, tag or commit (default: main); the commit it names is recorded.",
            show_default=False,
        ),
    ] = None,
    sha256: Annotated[
        str | None,
        typer.Option(
            "--sha256",
            help="The file's expected SHA-256; any other file is refused.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Download a GGUF file from the Hugging Face hub into the store.

    The revision is pinned to its commit before the download, and the file's SHA-256 is
    checked against the hub's record of it (and --sha256 when given) before it is added.
    """
    st = state()
    store = _store(st)
    entry = store.pull(
        repo, filename, revision=revision, name=name, sha256=sha256, report=st.output
    )
    data = _view(entry, store.default)
    st.output.result(data, _render_entry(data))


@app.command("list")
@returns("sahara_cli.agent.model_results:ModelList")
def list_models() -> None:
    """List the models in the store."""
    st = state()
    store = _store(st)
    from sahara_cli.agent.model_results import ModelList

    default = store.default
    models = [_view(e, default) for e in store.list()]
    data = ModelList(default=default, models=models)

    def render(console: Console) -> None:
        if not models:
            console.print(
                "No models yet: 'sahara model add PATH' or 'sahara model pull REPO FILE'."
            )
            return
        grid = Table(box=None)
        for column in ("", "name", "runner", "size", "content id", "asset"):
            grid.add_column(column, overflow="fold")
        for m in models:
            grid.add_row(
                "*" if m.default else "",
                m.name,
                m.runner,
                human_size(m.size),
                m.cid,
                f"#{m.asset_id}" if m.asset_id is not None else "-",
            )
        console.print(grid)

    st.output.result(data, render)


@app.command("show")
@returns("sahara_cli.agent.model_results:ModelView")
def show(
    model: Annotated[
        str,
        typer.Argument(
            help="A model name, 'default', or a model file or folder.", show_default=False
        ),
    ],
) -> None:
    """Show a model: runner, size, architecture, content id and asset."""
    st = state()
    store = _store(st)
    data = _view(store.resolve(model), store.default)
    st.output.result(data, _render_entry(data))


@app.command("rm")
@returns("sahara_cli.agent.model_results:ModelRemoved")
def rm(
    name: Annotated[str, typer.Argument(help="The model's name in the store.", show_default=False)],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove a model from the store (a linked model's files stay where they are)."""
    st = state()
    store = _store(st)
    entry = store.get(name)
    what = "forget" if entry.linked else "delete"
    st.confirm(f"{what.capitalize()} model '{entry.name}' ({entry.path})?", yes=yes)
    from sahara_cli.agent.model_results import ModelRemoved

    removed = store.remove(name)
    data = ModelRemoved(name=removed.name, path=str(removed.path), files_deleted=not removed.linked)
    st.output.result(data, lambda c: c.print(f"Removed model '{removed.name}'."))


@app.command("default")
@returns("sahara_cli.agent.model_results:DefaultModel")
def default(
    name: Annotated[
        str | None,
        typer.Argument(help="Make this model the default (omit to show it).", show_default=False),
    ] = None,
) -> None:
    """Show the default model, or set it."""
    st = state()
    store = _store(st)
    if name is not None:
        store.set_default(name)
    from sahara_cli.agent.model_results import DefaultModel

    current = store.default
    model = _view(store.get(current), current) if current is not None else None
    data = DefaultModel(default=current, model=model)
    st.output.result(
        data,
        lambda c: c.print(f"Default model: {current}" if current else "No default model."),
    )


@app.command("register")
@returns("sahara_cli.agent.model_results:ModelRegistered")
def register(
    name: Annotated[str, typer.Argument(help="The model's name in the store.", show_default=False)],
    asset_name: Annotated[
        str | None,
        typer.Option(
            "--asset-name", help="Name on chain (default: the model's).", show_default=False
        ),
    ] = None,
    public: Annotated[
        bool, typer.Option("--public", help="Keep the model unencrypted in the vault.")
    ] = False,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Register a model as an on-chain asset of kind 'model' (added to the vault first)."""
    from sahara_cli.agent.model_publish import check_unregistered, register_model
    from sahara_cli.commands._protocol import protocol, signer
    from sahara_cli.commands._vault import open_vault, registration_of

    st = state()
    store = _store(st)
    check_unregistered(store, name)
    proto = protocol(st)
    who = signer(st, signer_name, password_file)
    cfg = st.config().config.vault
    with open_vault(st) as vault:
        data = register_model(
            store,
            name,
            vault,
            proto,
            who,
            registration_of(st, "model", [], [], 0),
            asset_name=asset_name,
            public=public,
            embedder=cfg.embedder if cfg.index else None,
            report=st.output,
        )
    st.output.note(f"Registered model '{data.name}' as asset #{data.asset_id}")
    st.output.result(data, _render_entry(data))
