"""Model runners: one API (:mod:`.base`) over llama.cpp (:mod:`.llama`) and torch /
transformers (:mod:`.torch`), schema-guided JSON decoding (:mod:`.guided`), the model
store under ``<home>/models/`` (:mod:`.model_store`) and tiny random models for tests
(:mod:`.tiny_models`).

May import: ``sahara_cli.agent.types``, the bottom layers (errors, fsutil, units) and the
vault's UnixFS hashing. Never the agent's core (brain, memory, spec, team, record), its
tools or its servers: a runner turns messages into text and knows nothing of agents.
"""
