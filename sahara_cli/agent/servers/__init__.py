"""Network servers of agents: the OpenAI-compatible paid API of ``agent serve``
(:mod:`.openai_api`, its routes :mod:`.openai_http`, its wire format :mod:`.openai_wire`,
its API keys :mod:`.api_keys`, the quote guard :mod:`.quote_guard`, publishing an agent
for sale :mod:`.publish`), Agent2Agent (:mod:`.a2a`, :mod:`.a2a_auth`, a team member's
process :mod:`.a2a_member`), the MCP server of ``mcp serve`` (:mod:`.mcp_server`,
:mod:`.mcp_auth`), the per-address rate limit they share (:mod:`.limits`) and the signed
tokens of their keys (:mod:`.signed_tokens`).

May import everything else in ``sahara_cli.agent`` and the library below it; nothing in
the agent's core, runners or tools imports a server (teams start A2A members, so
:mod:`sahara_cli.agent.team` is the one exception).
"""
