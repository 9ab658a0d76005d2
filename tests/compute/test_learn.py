"""``agent learn``: an agent's feedback becomes a LoRA adapter (supervised or DPO) that its
torch runner loads from then on; bad input is refused with a clear error."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sahara_cli.agent.learn import LearnRequest, build_examples, learn
from sahara_cli.agent.memory import FeedbackStore
from sahara_cli.agent.spec import AgentSpec, AgentStore
from sahara_cli.compute.workflow import Context
from sahara_cli.errors import (
    AgentLearnUnsupported,
    AgentMemoryLocked,
    AgentNoFeedback,
    SaharaError,
)
from sahara_cli.identity.keys import Signer
from sahara_cli.vault.core import Vault
from sahara_cli.vault.local import LocalBlockstore

FEEDBACK = [
    ("What eats dates?", "the fox.", "bad", "the camel eats dates."),
    ("Where is the oasis?", "near the dunes.", "good", None),
    ("What eats seeds?", "nobody.", "bad", "the beetle eats seeds."),
    ("What eats seeds?", "a rock.", "bad", None),
]


@pytest.fixture(scope="module")
def tiny_hf_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sahara_cli.agent.runners.tiny_models import write_tiny_transformers

    return write_tiny_transformers(tmp_path_factory.mktemp("learn") / "tiny-hf")


@pytest.fixture
def signer() -> Signer:
    return Signer(os.urandom(32))


def save_agent(home: Path, model: Path | str, runner: str = "torch") -> AgentSpec:
    spec = AgentSpec.model_validate(
        {
            "name": "pupil",
            "persona": "You are pupil, a terse desert guide.",
            "model": {"name": str(model), "runner": runner, "n_ctx": 512},
            "memory": {"long_term": False, "short_term_turns": 0},
            "vault": {"search": False},
        }
    )
    AgentStore(home).save(spec, overwrite=True)
    return spec


def rate(home: Path, signer: Signer, rows: list[tuple[str, str, str, str | None]]) -> None:
    store = FeedbackStore(AgentStore(home).dir("pupil") / "feedback.sqlite", signer=signer)
    try:
        for question, answer, rating, correction in rows:
            store.add(question, answer, rating, correction)  # type: ignore[arg-type]
    finally:
        store.close()


@pytest.fixture
def ctx(tmp_path: Path, signer: Signer) -> Iterator[Context]:
    home = tmp_path / "home"
    root = tmp_path / "vault"
    with Vault(root, LocalBlockstore(root)) as vault:

        def no_node() -> object:
            raise AssertionError("an unpublished agent's learning reaches no node")

        yield Context(home, vault, no_node, lambda: signer)  # type: ignore[arg-type]


def request(**kw: object) -> LearnRequest:
    args: dict[str, object] = {
        "agent": "pupil",
        "lora": "r=4,alpha=8",
        "max_steps": 20,
        "epochs": 20,
        "learning_rate": 2e-2,
        "seq_len": 64,
    }
    args.update(kw)
    return LearnRequest(**args)  # type: ignore[arg-type]


def prompt_logits(model_path: Path, spec: AgentSpec, agent_dir: Path, prompt: str) -> object:
    from sahara_cli.agent.brain import runner_options
    from sahara_cli.agent.runners.base import open_runner
    from sahara_cli.agent.types import Message

    runner = open_runner("torch", model_path, runner_options(spec, agent_dir))
    try:
        ids = runner._prompt([Message("system", spec.persona), Message("user", prompt)])  # type: ignore[attr-defined]
        return runner._logits(ids).detach().cpu().clone(), ids  # type: ignore[attr-defined]
    finally:
        runner.close()


def test_feedback_becomes_supervised_examples_and_preference_pairs() -> None:
    from sahara_cli.agent.memory import Feedback

    rows = [Feedback(i, 0.0, q, a, r, c) for i, (q, a, r, c) in enumerate(FEEDBACK)]  # type: ignore[arg-type]
    made = build_examples(rows, lambda q: f"<{q}>")
    assert made.supervised == [
        ("<What eats dates?>", "the camel eats dates."),
        ("<Where is the oasis?>", "near the dunes."),
        ("<What eats seeds?>", "the beetle eats seeds."),
    ]
    assert [(p.prompt, p.chosen, p.rejected) for p in made.pairs] == [
        ("<What eats dates?>", "the camel eats dates.", "the fox."),
        ("<What eats seeds?>", "the beetle eats seeds.", "nobody."),
        # an answer rated bad, against the correction of the same question
        ("<What eats seeds?>", "the beetle eats seeds.", "a rock."),
    ]
    assert made.skipped("sft") == 1 and made.skipped("dpo") == 1


def test_learning_trains_an_adapter_the_torch_runner_loads(
    ctx: Context, signer: Signer, tiny_hf_model: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from sahara_cli.agent.workflows import show_agent

    spec = save_agent(ctx.home_root, tiny_hf_model)
    rate(ctx.home_root, signer, FEEDBACK)
    agent_dir = AgentStore(ctx.home_root).dir("pupil")
    before, ids = prompt_logits(tiny_hf_model, spec, agent_dir, "What eats dates?")

    result = learn(ctx, request())

    assert result.objective == "sft" and result.examples == 3 and result.feedback == 4
    assert result.steps == 20 and result.last_loss < result.first_loss
    assert not result.recorded and result.job_id is None
    assert result.not_recorded is not None and "not published" in result.not_recorded
    adapter = Path(result.adapter_path)
    assert (adapter / "adapter_model.safetensors").is_file()
    assert ctx.vault.find(result.adapter_cid).cid == result.adapter_cid
    learned = AgentStore(ctx.home_root).load("pupil")
    assert learned.adapter is not None
    assert learned.adapter.cid == result.adapter_cid and learned.adapter.job == result.job_key
    assert agent_dir / learned.adapter.path == adapter
    shown = show_agent(ctx.home_root, "pupil").spec["adapter"]
    assert shown["cid"] == result.adapter_cid and shown["job"] == result.job_key

    after, _ = prompt_logits(tiny_hf_model, learned, agent_dir, "What eats dates?")
    assert not torch.allclose(before, after, atol=1e-4)  # type: ignore[arg-type]
    base = AutoModelForCausalLM.from_pretrained(str(tiny_hf_model), local_files_only=True)
    peft = PeftModel.from_pretrained(base, str(adapter)).eval()
    with torch.no_grad():
        expected = peft(input_ids=torch.tensor([ids])).logits[0, -1]
    assert torch.allclose(after, expected, atol=1e-4)  # type: ignore[arg-type]


def test_dpo_prefers_the_corrections(ctx: Context, signer: Signer, tiny_hf_model: Path) -> None:
    import torch

    from sahara_cli.compute.preference import sequence_logps
    from sahara_cli.compute.textdata import load_model, load_tokenizer

    save_agent(ctx.home_root, tiny_hf_model)
    rate(ctx.home_root, signer, FEEDBACK)
    result = learn(ctx, request(objective="dpo", beta=0.5))
    assert result.objective == "dpo" and result.examples == 3 and result.skipped == 1
    assert math.isclose(result.losses[0], math.log(2), rel_tol=1e-3)  # policy = base at first
    assert result.last_loss < result.first_loss

    # The tuned model gives the corrections a higher margin over the rejected answers.
    from peft import PeftModel

    from sahara_cli.agent.learn import prompt_formatter
    from sahara_cli.compute.preference import PreferencePair, _batch, _encode

    prompt = prompt_formatter(tiny_hf_model, "You are pupil, a terse desert guide.")
    pair = PreferencePair(prompt("What eats dates?"), "the camel eats dates.", "the fox.")
    tokenizer = load_tokenizer(tiny_hf_model)
    batch = _batch(_encode([pair], tokenizer, 64), 0, "cpu")
    base = load_model(tiny_hf_model, "cpu").eval()
    with torch.no_grad():
        ref = sequence_logps(base, *batch)
        tuned = PeftModel.from_pretrained(base, result.adapter_path).eval()
        pol = sequence_logps(tuned, *batch)
    assert float((pol[0] - pol[1]) - (ref[0] - ref[1])) > 0


def test_no_feedback_is_a_clear_error(ctx: Context, tiny_hf_model: Path) -> None:
    save_agent(ctx.home_root, tiny_hf_model)
    with pytest.raises(AgentNoFeedback, match="no feedback"):
        learn(ctx, request())
    assert not (AgentStore(ctx.home_root).dir("pupil") / "adapters").exists()


def test_feedback_without_an_example_for_the_objective_is_refused(
    ctx: Context, signer: Signer, tiny_hf_model: Path
) -> None:
    save_agent(ctx.home_root, tiny_hf_model)
    rate(ctx.home_root, signer, [("Where is the oasis?", "near the dunes.", "good", None)])
    with pytest.raises(AgentNoFeedback, match="corrected answer") as err:
        learn(ctx, request(objective="dpo"))
    assert err.value.code == "agent.no_feedback"


def test_feedback_sealed_to_another_id_is_refused(ctx: Context, tiny_hf_model: Path) -> None:
    save_agent(ctx.home_root, tiny_hf_model)
    rate(ctx.home_root, Signer(os.urandom(32)), FEEDBACK)  # the agent's ID was replaced
    with pytest.raises(AgentMemoryLocked, match="sealed to another ID"):
        learn(ctx, request())


def test_a_llama_cpp_agent_cannot_learn(ctx: Context, signer: Signer, tmp_path: Path) -> None:
    from sahara_cli.agent.runners.tiny_models import write_tiny_gguf

    save_agent(ctx.home_root, write_tiny_gguf(tmp_path / "tiny.gguf"), runner="llama")
    rate(ctx.home_root, signer, FEEDBACK)
    with pytest.raises(AgentLearnUnsupported, match=r"llama\.cpp") as err:
        learn(ctx, request())
    assert err.value.code == "agent.learn_unsupported"


def test_a_llama_cpp_runner_refuses_an_adapter(tmp_path: Path) -> None:
    from sahara_cli.agent.runners.base import RunnerOptions, open_runner
    from sahara_cli.agent.runners.tiny_models import write_tiny_gguf

    model = write_tiny_gguf(tmp_path / "tiny.gguf")
    with pytest.raises(AgentLearnUnsupported):
        open_runner("llama", model, RunnerOptions(adapter=tmp_path / "adapter"))


def test_a_missing_adapter_folder_is_a_clear_error(tiny_hf_model: Path, tmp_path: Path) -> None:
    from sahara_cli.agent.runners.base import RunnerOptions, open_runner

    with pytest.raises(SaharaError, match=r"adapter_config\.json") as err:
        open_runner("torch", tiny_hf_model, RunnerOptions(adapter=tmp_path / "gone"))
    assert err.value.code == "agent.model_invalid"


def random_adapter(model: Path, out: Path) -> Path:
    """A LoRA adapter of ``model`` with random (not zero) weights: it changes the logits."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(model), local_files_only=True)
    config = LoraConfig(r=2, lora_alpha=4, init_lora_weights=False, task_type="CAUSAL_LM")
    get_peft_model(base, config).save_pretrained(str(out))
    return out


def test_team_members_with_adapters_do_not_share_a_runner(
    initialised: Path, tiny_hf_model: Path, tmp_path: Path
) -> None:
    from sahara_cli.agent.spec import AdapterSpec
    from sahara_cli.agent.team import _Members

    store = AgentStore(initialised)
    spec = save_agent(initialised, tiny_hf_model)
    for name in ("plain", "other"):
        store.save(spec.model_copy(update={"name": name}))
    adapter = random_adapter(tiny_hf_model, tmp_path / "adapter")
    store.save(spec.model_copy(update={"adapter": AdapterSpec(path=str(adapter))}), overwrite=True)
    members = _Members(initialised, {})
    try:
        plain, other, learned = (members.get(n) for n in ("plain", "other", "pupil"))
        assert plain.runner is other.runner  # the same model: one loaded copy
        assert learned.runner is not plain.runner
        assert learned.runner.describe()["adapter"] == str(adapter)
    finally:
        members.stack.close()


def test_an_interrupted_learning_leaves_the_agent_as_it_was_and_resumes(
    ctx: Context, signer: Signer, tiny_hf_model: Path
) -> None:
    import threading

    from sahara_cli.compute import jobs
    from sahara_cli.errors import TrainingInterrupted

    save_agent(ctx.home_root, tiny_hf_model)
    rate(ctx.home_root, signer, FEEDBACK)
    stop = threading.Event()
    seen: list[int] = []

    def on_step(report: object) -> None:
        seen.append(report.step)  # type: ignore[attr-defined]
        if report.step == 3:  # type: ignore[attr-defined]
            stop.set()

    with pytest.raises(TrainingInterrupted):
        learn(ctx, request(max_steps=6), on_step=on_step, stop=stop)
    assert AgentStore(ctx.home_root).load("pupil").adapter is None
    [job] = jobs.all_jobs(ctx.home_root)
    assert job.state == "interrupted"

    seen.clear()
    result = learn(ctx, request(max_steps=6), on_step=on_step)
    assert seen == [4, 5, 6] and result.steps == 6  # resumed from the checkpoint
    assert AgentStore(ctx.home_root).load("pupil").adapter is not None
