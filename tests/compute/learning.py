"""An agent that can learn, for the CLI tests: a tiny transformers model and a corrected
answer sealed to the home's ID."""

from __future__ import annotations

from pathlib import Path


def learning_agent(tmp: Path, name: str = "pupil") -> str:
    """An agent on a tiny transformers model with a corrected answer sealed to its ID."""
    from sahara_cli.agent.brain import agent_public_key
    from sahara_cli.agent.memory import FeedbackStore
    from sahara_cli.agent.runners.tiny_models import write_tiny_transformers
    from sahara_cli.agent.spec import AgentSpec, AgentStore

    model = write_tiny_transformers(tmp / "tiny-hf")
    spec = AgentSpec.model_validate(
        {"name": name, "model": {"name": str(model), "runner": "torch", "n_ctx": 512}}
    )
    store = AgentStore(tmp / "home")
    store.save(spec, overwrite=True)
    feedback = FeedbackStore(
        store.dir(name) / "feedback.sqlite", public_key=agent_public_key(tmp / "home", spec)
    )
    feedback.add("Add 2 and 3.", "6", "bad", correction="5")
    feedback.close()
    return name
