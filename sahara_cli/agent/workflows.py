"""The workflows of the ``agent`` commands, as library functions with typed results.

Creating, listing, showing and removing agents; reading a task; turning an answer into
its typed result and committing its provenance record on chain; the feedback an agent
keeps. Each returns a model of :mod:`sahara_cli.agent.results`; the CLI renders it, other
programs use it as it is. Publishing, API keys and serving are in
:mod:`sahara_cli.agent.servers`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sahara_cli.errors import FileUnreadable, UsageError

if TYPE_CHECKING:
    from sahara_cli.agent.brain import Agent
    from sahara_cli.agent.memory import FeedbackStore
    from sahara_cli.agent.results import (
        AgentAnswer,
        AgentList,
        AgentRemoved,
        AgentSpecDocument,
        AgentTemplates,
        FeedbackExport,
        FeedbackList,
    )
    from sahara_cli.agent.spec import AgentSpec
    from sahara_cli.agent.types import Answer
    from sahara_cli.identity import Signer
    from sahara_cli.protocol.client import Protocol
    from sahara_cli.results import Transaction

RUNNERS = ("llama", "torch")


def spec_document(home_root: Path, spec: AgentSpec) -> AgentSpecDocument:
    from sahara_cli.agent.results import AgentSpecDocument
    from sahara_cli.agent.spec import AgentStore

    path = AgentStore(home_root).spec_path(spec.name)
    return AgentSpecDocument(name=spec.name, path=str(path), spec=spec.model_dump(mode="json"))


def create_agent(
    home_root: Path,
    name: str,
    *,
    template: str | None = None,
    from_file: Path | None = None,
    model: str | None = None,
    runner: str | None = None,
    persona: str | None = None,
    description: str | None = None,
    identity: str | None = None,
    overwrite: bool = False,
) -> AgentSpecDocument:
    """Create the agent ``name`` from a template, a TOML file or the defaults, with the
    fields given changed; ``identity`` is the name of an ID of this home."""
    from sahara_cli.agent.spec import AgentSpec, AgentStore, check_name, load_spec, template_spec

    check_name(name)
    if template is not None and from_file is not None:
        raise UsageError("give --template or --from, not both")
    if template is not None:
        spec = template_spec(template, name)
    elif from_file is not None:
        spec = load_spec(from_file).model_copy(update={"name": name})
    else:
        spec = AgentSpec(name=name)
    updates: dict[str, Any] = {}
    if persona is not None:
        updates["persona"] = persona
    if description is not None:
        updates["description"] = description
    if identity is not None:
        updates["identity"] = identity
    model_updates: dict[str, Any] = {}
    if model is not None:
        model_updates["name"] = model
    if runner is not None:
        if runner not in RUNNERS:
            raise UsageError(f"--runner {runner!r} is not one of: {', '.join(RUNNERS)}")
        model_updates["runner"] = runner
    if model_updates:
        updates["model"] = spec.model.model_copy(update=model_updates)
    spec = AgentSpec.model_validate({**spec.model_dump(), **updates})
    AgentStore(home_root).save(spec, overwrite=overwrite)
    return spec_document(home_root, spec)


def show_agent(home_root: Path, name: str) -> AgentSpecDocument:
    from sahara_cli.agent.spec import AgentStore

    return spec_document(home_root, AgentStore(home_root).load(name))


def agent_templates() -> AgentTemplates:
    """The no-code templates shipped with sahara, with what each agent does."""
    from sahara_cli.agent.results import AgentTemplate, AgentTemplates
    from sahara_cli.agent.spec import list_templates, template_spec

    return AgentTemplates(
        templates=[
            AgentTemplate(template=t, description=template_spec(t, "x").description)
            for t in list_templates()
        ]
    )


def list_agents(home_root: Path) -> AgentList:
    from sahara_cli.agent.results import AgentList, AgentSummary
    from sahara_cli.agent.spec import AgentStore

    return AgentList(
        agents=[
            AgentSummary(
                name=s.name,
                description=s.description,
                model=s.model.name,
                runner=s.model.runner,
                tools=s.tools.builtin + s.tools.entry_points + [f"mcp:{m.name}" for m in s.mcp],
                asset_id=s.asset_id,
            )
            for s in AgentStore(home_root)
        ]
    )


def remove_agent(home_root: Path, name: str) -> AgentRemoved:
    """Remove the agent with its feedback and records (its vault notes stay)."""
    from sahara_cli.agent.results import AgentRemoved
    from sahara_cli.agent.spec import AgentStore

    AgentStore(home_root).remove(name)
    return AgentRemoved(removed=name)


def read_task(path: Path) -> str:
    """The task in ``path``, stripped; :class:`UsageError` when it is empty."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise FileUnreadable(f"cannot read task file {path}: {exc}") from None
    if not text:
        raise UsageError(f"task file {path} is empty")
    return text


def answer_result(agent_name: str, answer: Answer, tx: Transaction | None = None) -> AgentAnswer:
    """An answer as the typed result of ``agent chat --message`` and ``agent run``."""
    from sahara_cli.agent.results import AgentAnswer

    data = answer.to_dict()
    return AgentAnswer(agent=agent_name, tx=tx, **data)


def commit_answer(
    agent: Agent, answer: Answer, protocol: Protocol | Callable[[], Protocol]
) -> Transaction:
    """Commit the answer's provenance record on chain as the agent's ID, and keep the
    commitment in the answer's record and the agent's record store.

    ``protocol`` may be a function that connects, called once the agent's ID is known to
    be unlocked."""
    from sahara_cli.agent.record import committed, send_record

    signer = agent.ctx.signer if agent.ctx is not None else None
    if signer is None:
        raise UsageError("--record needs the agent's ID unlocked", hint="Pass --password-file.")
    chain = protocol() if callable(protocol) else protocol
    record_id, tx = send_record(chain, signer, answer.record)
    done = committed(record_id, tx)
    answer.record.update(done)
    if agent.records is not None:
        agent.records.mark_committed(answer.record["digest"], done)
    return tx.transaction()


def open_feedback(home_root: Path, name: str, signer: Signer) -> FeedbackStore:
    """The feedback store of agent ``name``, opened with its ID (feedback is sealed to it)."""
    from sahara_cli.agent.memory import FeedbackStore
    from sahara_cli.agent.spec import AgentStore

    store = AgentStore(home_root)
    store.load(name)
    return FeedbackStore(store.dir(name) / "feedback.sqlite", signer=signer)


def list_feedback(home_root: Path, name: str, signer: Signer) -> FeedbackList:
    """Rated answers and corrections of agent ``name``, oldest first."""
    from sahara_cli.agent.results import FeedbackEntry, FeedbackList

    fb = open_feedback(home_root, name, signer)
    try:
        rows = fb.all()
    finally:
        fb.close()
    return FeedbackList(
        feedback=[
            FeedbackEntry(
                feedback_id=f.id,
                rated_at=f.at,
                question=f.question,
                answer=f.answer,
                rating=f.rating,
                correction=f.correction,
            )
            for f in rows
        ]
    )


def export_feedback(home_root: Path, name: str, signer: Signer, out: Path) -> FeedbackExport:
    """Write agent ``name``'s approved and corrected answers to ``out`` as a chat-format
    JSONL training set."""
    from sahara_cli.agent.results import FeedbackExport
    from sahara_cli.agent.spec import AgentStore

    spec = AgentStore(home_root).load(name)
    fb = open_feedback(home_root, name, signer)
    try:
        counts = fb.export(out, spec.persona)
    except OSError as exc:  # no such folder, a directory, no permission
        raise UsageError(
            f"cannot write {out}: {exc.strerror or exc}",
            hint="Pass -o a file in an existing folder you can write to.",
        ) from None
    finally:
        fb.close()
    return FeedbackExport(agent=name, out=str(out), **counts)
