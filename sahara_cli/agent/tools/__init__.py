"""The Actor's tools: the registry (:mod:`.registry`), the context the built-ins run in
(:mod:`.context`), the built-in tools over the vault and the protocol (:mod:`.builtin`)
and the tools of MCP servers (:mod:`.mcp_client`).

May import: ``sahara_cli.agent.types``, ``.spec`` and ``.memory``, and the library below
the agent (identity, node, protocol, vault). Never the runners, the brain, teams or the
servers: tools are called by an agent, they do not run one.
"""
