"""Teams of agents: hierarchical (a manager splits, workers answer, the manager merges)
and peer-to-peer (each member its own process, talking over the Agent2Agent protocol).

```toml
name = "research-team"
mode = "hierarchical"          # or "p2p"
manager = "researcher"
workers = ["data-curator", "code-helper"]
max_subtasks = 3

# p2p teams instead:
# members = ["researcher", "data-curator", "code-helper"]
# entry = "researcher"         # receives the task (default: the first member)
# hops = 1                     # how far a task may travel from member to member
# base_port = 0                # members listen on base_port + i; 0 picks free ports
```

Members are agents of the home (``sahara agent create NAME --template T``). A p2p run
makes a fresh team secret, gives it to its members in their environment, and every
A2A request among them (and from the runner) is signed with it; members listen on
loopback unless the run allows the network.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sahara_cli.agent.spec import NAME_RE, AgentStore, parse_toml, read_toml, templates_dir
from sahara_cli.agent.types import Answer, Message
from sahara_cli.errors import SaharaError, TeamError

if TYPE_CHECKING:
    from sahara_cli.agent.brain import Agent
    from sahara_cli.agent.results import TeamRun
    from sahara_cli.agent.runners.base import Runner
    from sahara_cli.agent.spec import AgentSpec
    from sahara_cli.identity import Signer

TASK_CHARS = 400  # the longest subtask the manager may write
ANSWER_CHARS = 1500  # of each worker's answer shown to the manager when merging
READY_POLL = 0.1


def _check(name: str) -> None:
    if not NAME_RE.match(name):
        raise ValueError(f"bad agent name {name!r}: use letters, digits, '.', '_', '-'")


class TeamSpec(BaseModel):
    """A team: who is in it and how they work together."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    mode: Literal["hierarchical", "p2p"] = "hierarchical"
    # hierarchical
    manager: str | None = None
    workers: list[str] = Field(default_factory=list)
    max_subtasks: int = Field(3, ge=1, le=16)
    # p2p
    members: list[str] = Field(default_factory=list)
    entry: str | None = None
    hops: int = Field(1, ge=0, le=8)
    max_peers: int = Field(3, ge=1, le=16)  # peers one member asks at most
    host: str = "127.0.0.1"
    base_port: int = Field(0, ge=0, le=65535)
    start_timeout: float = Field(120.0, gt=0)  # seconds for every member to serve its card
    timeout: float = Field(600.0, gt=0)  # seconds for the whole task

    @field_validator("name", "manager", "entry")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None:
            _check(value)
        return value

    @field_validator("workers", "members")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            _check(name)
        if len(set(value)) != len(value):
            raise ValueError("names must not repeat")
        return value

    @model_validator(mode="after")
    def _shape(self) -> TeamSpec:
        if self.mode == "hierarchical":
            if self.manager is None:
                raise ValueError("a hierarchical team needs a manager")
            if not self.workers:
                raise ValueError("a hierarchical team needs at least one worker")
            if self.members:
                raise ValueError("'members' is for p2p teams; use 'workers'")
        else:
            if len(self.members) < 2:
                raise ValueError("a p2p team needs at least two members")
            if self.entry is None:
                self.entry = self.members[0]
            elif self.entry not in self.members:
                raise ValueError(f"entry {self.entry!r} is not one of the members")
            if self.manager is not None or self.workers:
                raise ValueError("'manager' and 'workers' are for hierarchical teams")
            if self.base_port and self.base_port + len(self.members) > 65536:
                raise ValueError("base_port leaves no room for every member")
        return self

    @property
    def agents(self) -> list[str]:
        """Every agent the team uses."""
        if self.mode == "hierarchical":
            assert self.manager is not None
            return [self.manager, *(w for w in self.workers if w != self.manager)]
        return list(self.members)


def parse_team(text: str, *, source: str = "team file") -> TeamSpec:
    """A team from TOML text."""
    return parse_toml(text, TeamSpec, source=source)


def load_team(path: Path) -> TeamSpec:
    text = read_toml(path, TeamError(f"no team file at {path}"))
    return parse_team(text, source=str(path))


def teams_dir() -> Path:
    """``templates/teams`` of a source checkout, or the copy inside the wheel."""
    return templates_dir("teams")


# --- results -------------------------------------------------------------------------


@dataclass
class TeamEvent:
    """Progress of a team run, for people watching."""

    kind: str  # start, ready, split, ask, answered, merge, done, stop
    member: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.member}: {self.kind}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class Subtask:
    """One piece of the task and the member's answer to it."""

    worker: str
    task: str
    answer: str = ""
    seconds: float = 0.0
    error: str | None = None
    record: dict[str, Any] = field(default_factory=dict)
    sources: list[dict[str, Any]] = field(default_factory=list)
    asked_by: str | None = None  # p2p: the member that consulted this one

    def to_dict(self) -> dict[str, Any]:
        return {
            "worker": self.worker,
            "task": self.task,
            "answer": self.answer,
            "seconds": round(self.seconds, 4),
            "error": self.error,
            "asked_by": self.asked_by,
            "sources": self.sources,
            "record": self.record,
        }


@dataclass
class TeamResult:
    """What a team run produced."""

    team: str
    mode: str
    task: str
    answer: str
    subtasks: list[Subtask] = field(default_factory=list)
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # per member
    sources: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    cards: list[dict[str, Any]] = field(default_factory=list)  # p2p: the cards discovered
    members: dict[str, str] = field(default_factory=dict)  # p2p: name -> URL

    def to_dict(self) -> dict[str, Any]:
        return {
            "team": self.team,
            "mode": self.mode,
            "task": self.task,
            "answer": self.answer,
            "subtasks": [s.to_dict() for s in self.subtasks],
            "records": self.records,
            "sources": self.sources,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "members": self.members,
            "cards": self.cards,
        }

    def to_result(self) -> TeamRun:
        """The typed result of ``sahara agent team run``."""
        from sahara_cli.agent.results import TeamRun

        return TeamRun.model_validate(self.to_dict())


OnEvent = Callable[[TeamEvent], None]


def run_team(
    home_root: Path,
    team: TeamSpec,
    task: str,
    *,
    on_event: OnEvent | None = None,
    agent_options: dict[str, Any] | None = None,
    member_env: Mapping[str, str] | None = None,
    network: bool = False,
) -> TeamResult:
    """Run ``task`` with ``team`` and return the merged answer with every member's part.

    ``agent_options`` go to :func:`sahara_cli.agent.brain.open_agent` (hierarchical
    teams: ``signer``, ``rpc_url``, ``vault_config``; a p2p run signs its request to the
    entry with ``signer``, so that the entry's owner gets the private parts of the
    reply). ``member_env`` is added to the environment of each p2p member's process
    (``SAHARA_PASSWORD`` unlocks its ID there). p2p members listen beyond loopback only
    with ``network``.
    """
    if not task.strip():
        raise TeamError("the task is empty")
    if team.mode == "p2p":
        from sahara_cli.agent.servers.a2a_auth import require_loopback

        require_loopback(team.host, network)
    store = AgentStore(home_root)
    missing = [name for name in team.agents if not store.exists(name)]
    if missing:
        raise TeamError(
            f"team {team.name!r}: no agent named {', '.join(repr(m) for m in missing)}",
            hint="Create it with 'sahara agent create NAME --template T'.",
        )
    emit = on_event or (lambda _event: None)
    if team.mode == "hierarchical":
        return _run_hierarchical(home_root, team, task, emit, agent_options or {})
    signer = (agent_options or {}).get("signer")
    return _run_p2p(home_root, team, task, emit, member_env or {}, signer, network)


# --- hierarchical --------------------------------------------------------------------


def split_schema(workers: Sequence[str], max_subtasks: int) -> dict[str, Any]:
    """The JSON schema of the manager's plan: up to ``max_subtasks`` (worker, task)."""
    return {
        "type": "object",
        "properties": {
            "subtasks": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_subtasks,
                "items": {
                    "type": "object",
                    "properties": {
                        "worker": {"type": "string", "enum": list(workers)},
                        "task": {"type": "string", "maxLength": TASK_CHARS},
                    },
                    "required": ["worker", "task"],
                },
            }
        },
        "required": ["subtasks"],
    }


def _runner_key(spec: AgentSpec, path: Path, kind: str) -> tuple[Any, ...]:
    m = spec.model
    adapter = spec.adapter.path if spec.adapter is not None else None
    return (kind, str(path), m.n_ctx, m.n_gpu_layers, m.threads, m.device, m.mmproj, adapter)


class _Members:
    """The team's agents, opened once each; agents on the same model share its runner
    (they answer one after another, so one loaded copy serves them all)."""

    def __init__(self, home_root: Path, options: dict[str, Any]) -> None:
        self.home_root = home_root
        self.options = options
        self.agents: dict[str, Agent] = {}
        self.runners: dict[tuple[Any, ...], Runner] = {}
        self.stack = ExitStack()

    def get(self, name: str) -> Agent:
        if name in self.agents:
            return self.agents[name]
        from sahara_cli.agent.brain import open_agent, runner_kind, runner_options
        from sahara_cli.agent.runners.base import open_runner
        from sahara_cli.agent.runners.model_store import ModelStore

        spec = AgentStore(self.home_root).load(name)
        entry = ModelStore(self.home_root).resolve(spec.model.name)
        kind = runner_kind(spec, entry)
        key = (*_runner_key(spec, entry.path, kind), spec.name if spec.adapter else None)
        runner = self.runners.get(key)
        if runner is None:
            options = runner_options(spec, AgentStore(self.home_root).dir(name))
            runner = open_runner(kind, entry.path, options)
            self.stack.callback(runner.close)
            self.runners[key] = runner
        agent = open_agent(self.home_root, spec, runner=runner, **self.options)
        self.stack.callback(agent.close)
        self.agents[name] = agent
        return agent

    def close(self) -> None:
        self.stack.close()


def _since(started: float) -> float:
    return time.perf_counter() - started


def _split(home_root: Path, manager: Agent, team: TeamSpec, task: str) -> list[tuple[str, str]]:
    from sahara_cli.agent.runners.base import GenerationParams

    workers = team.workers
    roster = []
    store = AgentStore(home_root)
    for name in workers:
        spec = store.load(name)
        desc = spec.description or spec.persona.strip().splitlines()[0]
        roster.append(f"- {name}: {desc}" if desc else f"- {name}")
    system = (
        f"{manager.spec.persona.strip()}\n\n"
        f"You lead a team. Your workers:\n{chr(10).join(roster)}\n"
        f"Split the user's task into 1 to {team.max_subtasks} subtasks, each for the "
        "worker best suited to it. Answer with JSON: "
        '{"subtasks": [{"worker": name, "task": text}]}.'
    )
    params = GenerationParams(
        max_tokens=team.max_subtasks * (TASK_CHARS // 2) + 64,
        temperature=manager.spec.generation.temperature,
        seed=manager.spec.generation.seed,
    )
    plan = manager.runner.complete_json(
        [Message("system", system), Message("user", task)],
        split_schema(workers, team.max_subtasks),
        params,
    )
    out: list[tuple[str, str]] = []
    for item in plan.get("subtasks", [])[: team.max_subtasks]:
        worker = item.get("worker") if isinstance(item, dict) else None
        if worker not in workers:
            continue
        text = str(item.get("task") or "").strip()
        out.append((worker, text or task))  # an empty subtask is the whole task
    if not out:
        raise TeamError(f"team {team.name!r}: the manager's plan names no worker")
    return out


def merge_messages(task: str, subtasks: Sequence[Subtask]) -> list[Message]:
    """What the manager sees to merge: the workers' answers, then the task."""
    lines = ["Your team worked on the task. Their answers:"]
    for i, sub in enumerate(subtasks, 1):
        body = sub.answer.strip() or (f"(failed: {sub.error})" if sub.error else "(empty)")
        lines.append(f"[{i}] {sub.worker}, on '{sub.task}': {body[:ANSWER_CHARS]}")
    lines.append("Write the final answer to the task, combining what is useful.")
    return [Message("system", "\n".join(lines)), Message("user", task)]


def _sources(answer: Answer) -> list[dict[str, Any]]:
    return [s.to_dict() for s in answer.sources]


def _result(
    team: TeamSpec,
    task: str,
    answer: str,
    subtasks: list[Subtask],
    records: dict[str, list[dict[str, Any]]],
    answer_sources: list[dict[str, Any]],
    timings: dict[str, float],
) -> TeamResult:
    """A finished run; its sources are every subtask's, then those of the final answer."""
    sources = [src for s in subtasks for src in s.sources] + answer_sources
    return TeamResult(team.name, team.mode, task, answer, subtasks, records, sources, timings)


def _run_hierarchical(
    home_root: Path, team: TeamSpec, task: str, emit: OnEvent, options: dict[str, Any]
) -> TeamResult:
    assert team.manager is not None
    started = time.perf_counter()
    timings: dict[str, float] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    members = _Members(home_root, options)
    try:
        t = time.perf_counter()
        for name in team.agents:
            emit(TeamEvent("start", name))
            members.get(name)
        timings["open"] = _since(t)
        manager = members.get(team.manager)
        t = time.perf_counter()
        plan = _split(home_root, manager, team, task)
        timings["split"] = _since(t)
        emit(TeamEvent("split", team.manager, f"{len(plan)} subtask(s)"))
        subtasks: list[Subtask] = []
        t = time.perf_counter()
        for worker, text in plan:
            emit(TeamEvent("ask", worker, text[:80]))
            sub = Subtask(worker=worker, task=text, asked_by=team.manager)
            w_started = time.perf_counter()
            try:
                answer = members.get(worker).respond([Message("user", text)])
            except SaharaError as exc:
                sub.error = exc.message
            else:
                sub.answer, sub.record, sub.sources = answer.text, answer.record, _sources(answer)
                records.setdefault(worker, []).append(answer.record)
            sub.seconds = _since(w_started)
            emit(TeamEvent("answered", worker, "failed" if sub.error else f"{sub.seconds:.1f} s"))
            subtasks.append(sub)
        timings["workers"] = _since(t)
        if all(s.error for s in subtasks):
            raise TeamError(f"team {team.name!r}: every worker failed ({subtasks[0].error})")
        t = time.perf_counter()
        emit(TeamEvent("merge", team.manager))
        final = manager.respond(merge_messages(task, subtasks))
        timings["merge"] = _since(t)
        records.setdefault(team.manager, []).append(final.record)
    finally:
        members.close()
    timings["total"] = _since(started)
    emit(TeamEvent("done", team.manager))
    return _result(team, task, final.text, subtasks, records, _sources(final), timings)


# --- peer-to-peer --------------------------------------------------------------------


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class _Process:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def failure(self) -> str:
        """The member's own one-line error, or the last line it logged."""
        try:
            lines = [ln.strip() for ln in self.log.read_text(errors="replace").splitlines()]
        except OSError:
            lines = []
        lines = [ln for ln in lines if ln]
        for line in reversed(lines):
            if line.startswith("error:"):
                return line.removeprefix("error:").strip()
        return lines[-1] if lines else f"exit status {self.proc.returncode}"


def member_command(
    home_root: Path,
    name: str,
    host: str,
    port: int,
    peers: Sequence[str],
    team: TeamSpec,
    network: bool = False,
) -> list[str]:
    """The command line of one member process (no secret: those go in its environment)."""
    cmd = [
        sys.executable,
        "-m",
        "sahara_cli.agent.servers.a2a_member",
        "--home",
        str(home_root),
        "--agent",
        name,
        "--host",
        host,
        "--port",
        str(port),
        "--max-peers",
        str(team.max_peers),
        "--timeout",
        str(team.timeout),
        "--parent-pid",
        str(os.getpid()),
    ]
    for url in peers:
        cmd += ["--peer", url]
    if network:
        cmd.append("--network")
    return cmd


@contextmanager
def start_members(
    home_root: Path,
    team: TeamSpec,
    emit: OnEvent,
    env: Mapping[str, str] | None = None,
    network: bool = False,
) -> Iterator[list[_Process]]:
    """Start every member in its own process (``env`` added to its environment) and
    wait for its card; stop them all on the way out, whatever happened."""
    environ = {**os.environ, **(env or {})}
    ports = [
        team.base_port + i if team.base_port else _free_port(team.host)
        for i in range(len(team.members))
    ]
    urls = [f"http://{team.host}:{p}" for p in ports]
    procs: list[_Process] = []
    with tempfile.TemporaryDirectory(prefix="sahara-team-") as logs:
        try:
            for name, port, url in zip(team.members, ports, urls, strict=True):
                peers = [u for u in urls if u != url]
                log = Path(logs) / f"{name}.log"
                with log.open("wb") as out:
                    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                        member_command(home_root, name, team.host, port, peers, team, network),
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        env=environ,
                    )
                procs.append(_Process(name, url, proc, log))
                emit(TeamEvent("start", name, url))
            _wait_ready(procs, team.start_timeout, emit)
            yield procs
        finally:
            stop_members(procs)
            for p in procs:
                emit(TeamEvent("stop", p.name))


def _wait_ready(procs: Sequence[_Process], timeout: float, emit: OnEvent) -> None:
    import httpx

    from sahara_cli.agent.servers.a2a import CARD_PATH

    deadline = time.monotonic() + timeout
    waiting = list(procs)
    with httpx.Client(timeout=2.0, trust_env=False) as http:  # direct, as A2APeer
        while waiting:
            for p in list(waiting):
                if p.proc.poll() is not None:
                    raise TeamError(f"member {p.name!r} failed to start: {p.failure()}")
                try:
                    ok = http.get(p.url + CARD_PATH).status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    waiting.remove(p)
                    emit(TeamEvent("ready", p.name, p.url))
            if waiting and time.monotonic() > deadline:
                names = ", ".join(p.name for p in waiting)
                raise TeamError(f"member(s) {names} did not serve a card within {timeout:g} s")
            if waiting:
                time.sleep(READY_POLL)


def stop_members(procs: Sequence[_Process], grace: float = 5.0) -> None:
    """Terminate every member, kill those that linger, and reap them all."""
    for p in procs:
        if p.proc.poll() is None:
            p.proc.terminate()
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.proc.kill()
            p.proc.wait()


def _flatten(
    asked_by: str, exchanges: Sequence[Any], subtasks: list[Subtask], records: dict[str, Any]
) -> None:
    for e in exchanges:
        data = e.data
        name = str(data.get("agent") or e.peer)
        sub = Subtask(
            worker=name,
            task=e.task,
            answer=e.answer,
            seconds=e.seconds,
            error=e.error,
            record=dict(data.get("record") or {}),
            sources=list(data.get("sources") or []),
            asked_by=asked_by,
        )
        subtasks.append(sub)
        if sub.record:
            records.setdefault(name, []).append(sub.record)
        from sahara_cli.agent.servers.a2a import Exchange

        _flatten(
            name, [Exchange.from_dict(x) for x in data.get("exchanges", [])], subtasks, records
        )


def _run_p2p(
    home_root: Path,
    team: TeamSpec,
    task: str,
    emit: OnEvent,
    env: Mapping[str, str],
    signer: Signer | None,
    network: bool,
) -> TeamResult:
    from sahara_cli.agent.servers.a2a import HOPS_KEY, VISITED_KEY, A2APeer, card_to_dict, discover
    from sahara_cli.agent.servers.a2a_auth import SECRET_ENV, Credentials, new_secret

    assert team.entry is not None
    started = time.perf_counter()
    timings: dict[str, float] = {}
    secret = new_secret()  # this run's: members and runner sign with it, then it is gone
    credentials = Credentials(secret, signer)
    env = {**env, SECRET_ENV: secret}
    with start_members(home_root, team, emit, env, network) as procs:
        timings["start"] = _since(started)
        cards = discover([p.url for p in procs])
        entry = next(p for p in procs if p.name == team.entry)
        emit(TeamEvent("ask", team.entry, task[:80]))
        t = time.perf_counter()
        try:
            reply = A2APeer(entry.url, timeout=team.timeout, credentials=credentials).send(
                task, metadata={HOPS_KEY: team.hops, VISITED_KEY: []}
            )
        except TeamError as exc:
            if entry.proc.poll() is not None:
                raise TeamError(f"member {entry.name!r} crashed: {entry.failure()}") from exc
            raise
        timings["task"] = _since(t)
        emit(TeamEvent("answered", team.entry, f"{timings['task']:.1f} s"))
    timings["total"] = _since(started)
    subtasks: list[Subtask] = []
    records: dict[str, list[dict[str, Any]]] = {}
    _flatten(team.entry, reply.exchanges, subtasks, records)
    if reply.record:
        records.setdefault(team.entry, []).append(reply.record)
    emit(TeamEvent("done", team.entry))
    result = _result(
        team, task, reply.text, subtasks, records, list(reply.data.get("sources") or []), timings
    )
    result.cards = [card_to_dict(c) for c in cards]
    result.members = {p.name: p.url for p in procs}
    return result
