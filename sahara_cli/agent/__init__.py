"""Sahara agents: Brain, Perceptor and Actor on llama.cpp or torch, with tools, teams,
serving and metering. Nothing here imports typer, rich or textual.

The core sits in this package: the agent spec (:mod:`.spec`), the Brain (:mod:`.brain`),
memory (:mod:`.memory`), the Perceptor (:mod:`.perceptor`), provenance records
(:mod:`.record`), teams (:mod:`.team`), plain data (:mod:`.types`), typed results
(:mod:`.results`), the workflows of the ``agent`` commands (:mod:`.workflows`) and
learning from feedback (:mod:`.learn`, its result in :mod:`.learn_results`).
Sub-packages by role, each saying what it may import: :mod:`.runners` (model runners and
the model store), :mod:`.tools` (the Actor's tools) and :mod:`.servers` (the agent's
network servers: OpenAI-compatible API, A2A, MCP).
"""
