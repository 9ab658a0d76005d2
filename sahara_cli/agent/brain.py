"""The Brain: persona, memory and a plan-act-observe loop over one runner.

One message goes through four steps:

1. **Perceive**: the message plus the text of any files (:mod:`perceptor`).
2. **Recall**: vault passages the agent may use (scopes and license policy), long-term
   memories, and rated past answers as examples, all retrieved through the index.
3. **Act**: while the model chooses a tool (JSON constrained by the runner, so the
   choice always parses), fill its arguments (constrained by the tool's own schema),
   call it, and show the model the result. A tool that fails is an observation, not
   a crash.
4. **Answer**: stream the reply, then build the provenance record, remember the
   exchange, and keep the record.

``ask`` keeps the conversation (short-term memory); ``respond`` answers a history given
by the caller, as the OpenAI-compatible server does.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sahara_cli.agent.memory import (
    FeedbackStore,
    LongTermMemory,
    ShortTermMemory,
    seal_memory_summaries,
)
from sahara_cli.agent.perceptor import perceive
from sahara_cli.agent.runners.base import GenerationParams, Runner, RunnerOptions, open_runner
from sahara_cli.agent.spec import AgentSpec, AgentStore
from sahara_cli.agent.types import Answer, Message, Source, ToolCall, asset_ids

if TYPE_CHECKING:
    from sahara_cli.agent.memory import Feedback
    from sahara_cli.agent.record import RecordStore
    from sahara_cli.agent.runners.model_store import ModelEntry
    from sahara_cli.agent.tools.context import ToolContext
    from sahara_cli.agent.tools.registry import ToolBox
    from sahara_cli.identity import Signer

Delta = Callable[[str], None]


class TextGuard(Protocol):
    """Filters a reply as it streams (:class:`~sahara_cli.agent.servers.quote_guard.QuoteGuard`)."""

    def feed(self, piece: str) -> str: ...

    def close(self) -> str: ...


Event = Callable[[str, dict[str, Any]], None]

ANSWER = "answer"
#: How a caller's own system message reaches the model of a stateless call: as a user
#: turn, under the agent's own system prompt, never merged into it.
CALLER_SYSTEM = "(The caller's instructions; the agent's own instructions prevail.)\n"
SOURCE_CHARS = 700  # of each retrieved passage shown to the model
OBSERVATION_CHARS = 1500  # of each tool result shown to the model


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _observation(call: ToolCall) -> str:
    if call.ok:
        body = call.output if isinstance(call.output, str) else json.dumps(call.output, default=str)
        return f"Result of {call.tool}: {_clip(body, OBSERVATION_CHARS)}"
    return f"{call.tool} failed: {call.error}"


@dataclass
class Turn:
    """A message ready for its reply: the prompt as it will be sent, what was
    retrieved, and the tool calls made on the way."""

    question: str
    messages: list[Message]
    sources: list[Source]
    calls: list[ToolCall]
    images: list[Path]
    params: GenerationParams
    started: float

    @property
    def asset_ids(self) -> list[int]:
        """The distinct on-chain assets of the sources, in order."""
        return asset_ids(self.sources)


class Agent:
    """An agent ready to answer: spec, loaded runner, tools and memory."""

    def __init__(
        self,
        spec: AgentSpec,
        runner: Runner,
        toolbox: ToolBox | None = None,
        *,
        ctx: ToolContext | None = None,
        model_cid: str | None = None,
        long_term: LongTermMemory | None = None,
        feedback: FeedbackStore | None = None,
        records: RecordStore | None = None,
        on_event: Event | None = None,
    ) -> None:
        self.spec = spec
        self.runner = runner
        self.toolbox = toolbox
        self.ctx = ctx
        self.model_cid = model_cid
        self.short_term = ShortTermMemory(spec.memory.short_term_turns)
        self.long_term = long_term
        self.feedback = feedback
        self.records = records
        self.on_event = on_event
        self.last_answer: Answer | None = None
        self.last_question: str | None = None
        self._closers: list[Callable[[], None]] = []

    # --- public API -----------------------------------------------------------------

    def ask(
        self,
        message: str,
        *,
        on_delta: Delta | None = None,
        files: Sequence[Path] = (),
        images: Sequence[Path] = (),
    ) -> Answer:
        """One turn of the conversation; the exchange is remembered."""
        seen = perceive(
            message,
            files=files,
            images=images,
            supports_images=self.runner.supports_images,
            model_name=self.spec.model.name,
        )
        budget = self.runner.context_length // 4
        history = self.short_term.messages(budget, self.runner.count_tokens)
        turn = self._prepare(history, seen.text, query=message, images=seen.images)
        answer = self._finish(turn, on_delta)
        self.short_term.add(seen.text, answer.text)
        self._after(message, answer)
        return answer

    def respond(
        self,
        messages: Sequence[Message],
        *,
        on_delta: Delta | None = None,
        private_memory: bool = False,
    ) -> Answer:
        """Answer the last user message of ``messages`` (a stateless call).

        Long-term memory and feedback examples are the owner's own conversations: they
        are used only with ``private_memory`` (never for callers of a served agent).
        """
        turn = self.prepare(messages, private_memory=private_memory, trust_system=True)
        return self.finish(turn, on_delta)

    def prepare(
        self,
        messages: Sequence[Message],
        *,
        private_memory: bool = False,
        sampling: Mapping[str, Any] | None = None,
        trust_system: bool = False,
    ) -> Turn:
        """Everything before the reply of a stateless call: recall and tool calls.

        The caller's ``system`` messages never change the agent's system prompt (its
        persona, tools and passages): each becomes a user turn marked as the caller's
        instructions, in its place (one after the last user message goes just before
        it). ``trust_system`` merges them into the system prompt instead, for callers
        inside this process (a team's manager).

        A server meters the call between :meth:`prepare` and :meth:`finish`, when the
        sources are known and nothing has been sent to the caller yet. ``sampling``
        (max_tokens, temperature, top_p, seed, stop) overrides the spec's for the
        reply; max_tokens never goes above the spec's.
        """
        turns = [m for m in messages if m.role in ("user", "assistant")]
        if not turns or turns[-1].role != "user":
            from sahara_cli.errors import UsageError

            raise UsageError("the last message must be the user's")
        extra_system: list[str] = []
        if trust_system:
            extra_system = [m.content for m in messages if m.role == "system"]
        else:
            last = max(i for i, m in enumerate(messages) if m.role == "user")
            turns = [
                Message("user", CALLER_SYSTEM + m.content) if m.role == "system" else m
                for i, m in enumerate(messages)
                if i != last
                and (m.role in ("user", "assistant") or (m.role == "system" and m.content.strip()))
            ]
            turns.append(messages[last])
        override = dict(sampling or {})
        if "max_tokens" in override:
            override["max_tokens"] = min(
                int(override["max_tokens"]), self.spec.generation.max_tokens
            )
        return self._prepare(
            turns[:-1],
            turns[-1].content,
            query=turns[-1].content,
            extra_system=extra_system,
            private_memory=private_memory,
            sampling=override,
        )

    def finish(
        self, turn: Turn, on_delta: Delta | None = None, *, guard: TextGuard | None = None
    ) -> Answer:
        """Stream the reply of a prepared turn and keep its record. With ``guard``, the
        reply passes through it (``on_delta`` and the answer's text and record get what
        it lets through)."""
        answer = self._finish(turn, on_delta, guard)
        self._after(turn.question, answer, remember=False)
        return answer

    def rate(self, rating: str, correction: str | None = None) -> Feedback:
        """Feedback on the last answer: 'good', 'bad', or a correction."""
        from sahara_cli.errors import UsageError

        if self.feedback is None:
            raise UsageError("this agent keeps no feedback (no home)")
        if self.last_answer is None or self.last_question is None:
            raise UsageError("there is no answer to rate yet")
        kind = "bad" if correction else rating
        return self.feedback.add(self.last_question, self.last_answer.text, kind, correction)  # type: ignore[arg-type]

    def close(self) -> None:
        for close in reversed(self._closers):
            with contextlib.suppress(Exception):  # closing the rest must go on
                close()
        self._closers.clear()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the steps --------------------------------------------------------------------

    def _emit(self, event: str, **data: Any) -> None:
        if self.on_event is not None:
            self.on_event(event, data)

    def _recall(
        self, query: str, *, private: bool = True
    ) -> tuple[list[Source], list[Source], list[Feedback]]:
        sources: list[Source] = []
        if self.spec.vault.search and self.spec.vault.top_k > 0 and self.ctx is not None:
            from sahara_cli.agent.tools.registry import retrieve

            sources = [
                s
                for s in retrieve(self.ctx, query, self.spec.vault.top_k)
                if s.score >= self.spec.vault.min_score
            ]
        memories: list[Source] = []
        if private and self.long_term is not None and self.spec.memory.long_term:
            memories = self.long_term.recall(query, self.spec.memory.recall)
        examples: list[Feedback] = []
        if private and self.feedback is not None and self.spec.memory.feedback_examples > 0:
            examples = self.feedback.examples(query, self.spec.memory.feedback_examples)
        return sources, memories, examples

    def _system(
        self,
        sources: list[Source],
        memories: list[Source],
        examples: list[Feedback],
        extra: Sequence[str] = (),
    ) -> str:
        parts = [self.spec.persona.strip(), *[e.strip() for e in extra if e.strip()]]
        if self.toolbox is not None and self.toolbox.tools:
            parts.append("You can use these tools:\n" + self.toolbox.describe())
        if sources:
            lines = [
                f"[{i}] {s.name}"
                + (f" (asset #{s.asset_id})" if s.asset_id is not None else "")
                + f": {_clip(s.text, SOURCE_CHARS)}"
                for i, s in enumerate(sources, 1)
            ]
            parts.append(
                "Passages from the vault; cite them by number when you use them:\n"
                + "\n".join(lines)
            )
        if memories:
            parts.append(
                "From earlier conversations:\n"
                + "\n".join(f"- {_clip(m.text, SOURCE_CHARS)}" for m in memories)
            )
        if examples:
            parts.append(
                "Answers the user approved for similar questions:\n"
                + "\n".join(
                    f"Q: {_clip(e.question, 300)}\nA: {_clip(e.target or '', 600)}"
                    for e in examples
                )
            )
        return "\n\n".join(p for p in parts if p)

    def _params(self, **override: Any) -> GenerationParams:
        g = self.spec.generation
        base: dict[str, Any] = {
            "max_tokens": g.max_tokens,
            "temperature": g.temperature,
            "top_p": g.top_p,
            "seed": g.seed,
        }
        base.update(override)
        return GenerationParams(**base)

    def _act(self, messages: list[Message], question: int, reserve: int) -> list[ToolCall]:
        """The plan-act-observe loop; appends the observations to ``messages``.

        ``messages[question]`` is the user's message, kept whatever else must go to fit
        the context; each JSON step leaves room for its own completion and the reply's
        ``reserve`` tokens."""
        calls: list[ToolCall] = []
        loop = self.spec.loop
        if not self.toolbox or loop.max_steps == 0 or loop.tool_choice == "none":
            return calls
        names = sorted(self.toolbox.tools)
        choose = self.toolbox.tool_choice_schema()
        must = copy.deepcopy(choose)
        must["properties"]["tool"]["enum"] = names  # "required": no answer before a tool
        json_params = self._params(max_tokens=min(self.spec.generation.max_tokens, 128))
        for step in range(self.spec.loop.max_steps):
            ask = Message(
                "user",
                "Decide the next step. Reply with JSON: a short plan in 'thought', and in "
                f"'tool' one of {', '.join(names)} to call a tool, or '{ANSWER}' when you "
                "can answer now.",
            )
            schema = must if step == 0 and loop.tool_choice == "required" else choose
            room = json_params.max_tokens + reserve
            choice = self.runner.complete_json(
                self._fit([*messages, ask], question, room), schema, json_params
            )
            tool = str(choice.get("tool", ANSWER))
            self._emit("plan", step=step, thought=choice.get("thought", ""), tool=tool)
            if tool == ANSWER:
                break
            fill = Message(
                "user",
                f"Give the arguments for {tool} as JSON matching its parameters.",
            )
            try:
                arguments = self.runner.complete_json(
                    self._fit([*messages, fill], question, room),
                    self.toolbox.arguments_schema(tool),
                    json_params,
                )
            except Exception as exc:  # an unknown tool is an observation, not a crash
                arguments = {}
                call = ToolCall(tool, arguments, ok=False, error=str(exc))
            else:
                call = self.toolbox.call(tool, arguments)
            calls.append(call)
            self._emit("tool", call=call.to_dict())
            messages.append(
                Message("assistant", f"Calling {tool} with {json.dumps(call.arguments)}")
            )
            messages.append(Message("user", _observation(call)))
        return calls

    def _fit(self, messages: list[Message], question: int, reserve: int) -> list[Message]:
        """``messages`` cut to leave ``reserve`` tokens of the context free.

        ``messages[0]`` is the system message and ``messages[question]`` the user's
        current message; both stay. What goes first: earlier conversation (oldest
        first), then tool observations (oldest first), then the end of the system text
        (the retrieved passages).
        """
        limit = self.runner.context_length - reserve
        count = self.runner.count_tokens
        cost = [count(m.content) + 4 for m in messages]
        keep = [True] * len(messages)
        total = sum(cost)
        order = [*range(1, question), *range(question + 1, len(messages))]
        for i in order:
            if total <= limit:
                break
            keep[i] = False
            total -= cost[i]
        out = [m for m, k in zip(messages, keep, strict=True) if k]
        if total > limit and out:
            system = out[0]
            room = max(limit - (total - cost[0]), 16)
            # Shorten the system text to what fits, about 4 characters a token.
            out[0] = Message(system.role, system.content[: room * 4])
        return out

    def _prepare(
        self,
        history: Sequence[Message],
        user_text: str,
        *,
        query: str,
        images: Sequence[Path] = (),
        extra_system: Sequence[str] = (),
        private_memory: bool = True,
        sampling: Mapping[str, Any] | None = None,
    ) -> Turn:
        started = time.perf_counter()
        sources, memories, examples = self._recall(query, private=private_memory)
        self._emit("recall", sources=len(sources), memories=len(memories), examples=len(examples))
        system = self._system(sources, memories, examples, extra_system)
        messages = [Message("system", system), *history, Message("user", user_text)]
        params = self._params(**(sampling or {}))
        question = len(messages) - 1
        calls = self._act(messages, question, params.max_tokens)
        messages = self._fit(messages, question, params.max_tokens)
        return Turn(query, messages, [*sources, *memories], calls, list(images), params, started)

    def _finish(self, turn: Turn, on_delta: Delta | None, guard: TextGuard | None = None) -> Answer:
        self._emit("answer", prompt_messages=len(turn.messages))
        pieces: list[str] = []

        def send(text: str) -> None:
            if text:
                pieces.append(text)
                if on_delta is not None:
                    on_delta(text)

        for delta in self.runner.stream_chat(turn.messages, turn.params, images=turn.images):
            send(guard.feed(delta) if guard is not None else delta)
        if guard is not None:
            send(guard.close())
        done = self.runner.last
        answer = Answer(
            text="".join(pieces),
            sources=turn.sources,
            tool_calls=turn.calls,
            prompt_tokens=done.prompt_tokens,
            completion_tokens=done.completion_tokens,
            finish_reason=done.finish_reason,
        )
        answer.record = self._record(turn.messages, answer, time.perf_counter() - turn.started)
        return answer

    def _record(
        self, messages: Sequence[Message], answer: Answer, seconds: float
    ) -> dict[str, Any]:
        from sahara_cli.agent.record import build_record

        record = build_record(
            agent=self.spec.name,
            agent_asset=self.spec.asset_id,
            model_cid=self.model_cid,
            runner=self.runner.kind,
            messages=[m.to_dict() for m in messages],
            answer=answer.text,
            assets=answer.asset_ids,
            tool_calls=[c.to_dict() for c in answer.tool_calls],
        )
        data: dict[str, Any] = record.to_dict()
        data["seconds"] = round(seconds, 4)
        return data

    def _after(self, question: str, answer: Answer, *, remember: bool = True) -> None:
        self.last_question, self.last_answer = question, answer
        if self.records is not None:
            self.records.add_dict(answer.record)
        if remember and self.long_term is not None and self.spec.memory.long_term:
            cid = self.long_term.remember(question, answer.text)
            if cid is not None:
                self._emit("remembered", cid=cid)


# --- opening an agent from a home ----------------------------------------------------


def runner_options(spec: AgentSpec, agent_dir: Path | None = None) -> RunnerOptions:
    """The load-time settings of ``spec``'s model; a relative adapter path is inside
    ``agent_dir`` (the agent's folder)."""
    m = spec.model
    adapter = None
    if spec.adapter is not None:
        adapter = Path(spec.adapter.path).expanduser()
        if agent_dir is not None and not adapter.is_absolute():
            adapter = agent_dir / adapter
    return RunnerOptions(
        n_ctx=m.n_ctx,
        n_gpu_layers=m.n_gpu_layers,
        threads=m.threads,
        device=m.device,
        mmproj=Path(m.mmproj) if m.mmproj else None,
        adapter=adapter,
    )


def runner_kind(spec: AgentSpec, entry: ModelEntry) -> str:
    """The spec's runner, or the one the model store detected for the model."""
    return spec.model.runner or entry.runner


def open_agent(
    home_root: Path,
    agent: str | AgentSpec,
    *,
    signer: Signer | None = None,
    rpc_url: str | None = None,
    runner: Runner | None = None,
    on_event: Event | None = None,
    vault_config: Any = None,
) -> Agent:
    """Load an agent of ``home_root``: its model, tools, memory and records.

    ``signer`` (the unlocked agent ID) lets the agent read its private vault items and
    long-term memory; without it, only public items are read and nothing is remembered.
    """
    from sahara_cli.agent.runners.model_store import ModelStore

    store = AgentStore(home_root)
    spec = store.load(agent) if isinstance(agent, str) else agent
    agent_dir = store.dir(spec.name)
    agent_dir.mkdir(parents=True, exist_ok=True)
    closers: list[Callable[[], None]] = []
    try:
        entry = ModelStore(home_root).resolve(spec.model.name)
        if runner is None:
            options = runner_options(spec, agent_dir)
            runner = open_runner(runner_kind(spec, entry), entry.path, options)
            closers.append(runner.close)
        ctx, toolbox, long_term = _open_tools(
            home_root, spec, signer=signer, rpc_url=rpc_url, vault_config=vault_config
        )
        closers.extend([ctx.close, toolbox.close])
        if long_term is not None:
            closers.append(long_term.close)
        public_key = signer.public_key if signer else agent_public_key(home_root, spec)
        if signer is None and public_key is not None:
            # Summaries an older version kept in clear are sealed now, not at the next
            # unlocked session (the unlocked one seals them as it opens its memory).
            seal_memory_summaries(agent_dir / "memory.sqlite", public_key)
        feedback = FeedbackStore(
            agent_dir / "feedback.sqlite",
            _embedder_factory(ctx),
            public_key=public_key,
            signer=signer,
        )
        closers.append(feedback.close)
        from sahara_cli.agent.record import RecordStore

        records = RecordStore(agent_dir / "records.sqlite")
        closers.append(records.close)
    except BaseException:
        for close in reversed(closers):
            close()
        raise
    out = Agent(
        spec,
        runner,
        toolbox,
        ctx=ctx,
        model_cid=entry.cid,
        long_term=long_term,
        feedback=feedback,
        records=records,
        on_event=on_event,
    )
    out._closers = closers
    return out


def agent_public_key(home_root: Path, spec: AgentSpec) -> bytes | None:
    """The public key of the agent's ID (no password needed); None when the home has no
    such ID. Feedback is sealed to it."""
    from sahara_cli.config import load_config
    from sahara_cli.errors import IdentityError
    from sahara_cli.home import Home
    from sahara_cli.identity.store import KeyStore

    home = Home(home_root)
    try:
        store = KeyStore(
            home.keystore_dir,
            config_path=home.config_file,
            default=load_config(home.config_file).config.identity.default,
        )
        info = store.resolve(spec.identity)
    except IdentityError:
        return None
    return bytes.fromhex(info.public_key.removeprefix("0x")) if info.public_key else None


def _embedder_factory(ctx: ToolContext) -> Callable[[], Any]:
    def make() -> Any:
        return ctx.index().embedder

    return make


def _open_tools(
    home_root: Path,
    spec: AgentSpec,
    *,
    signer: Signer | None,
    rpc_url: str | None,
    vault_config: Any,
) -> tuple[ToolContext, ToolBox, LongTermMemory | None]:
    from sahara_cli.agent.tools.context import ToolContext
    from sahara_cli.agent.tools.registry import build_toolbox

    ctx = ToolContext(
        home_root=home_root,
        rpc_url=rpc_url,
        signer=signer,
        spec=spec,
        vault_config=vault_config,
    )
    try:
        toolbox = build_toolbox(spec, ctx)
    except BaseException:
        ctx.close()
        raise
    long_term = None
    if spec.memory.long_term and signer is not None:
        long_term = LongTermMemory(
            AgentStore(home_root).dir(spec.name), ctx.vault(), ctx.index(), signer
        )
    return ctx, toolbox, long_term
