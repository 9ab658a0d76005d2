"""Team files: what parses, what is refused with a clear message, and the templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from sahara_cli.agent.spec import AgentSpec, template_spec
from sahara_cli.agent.team import TeamSpec, load_team, parse_team, split_schema, teams_dir
from sahara_cli.errors import AgentSpecInvalid, TeamError


def test_hierarchical_team_parses() -> None:
    team = parse_team(
        'name = "t"\nmode = "hierarchical"\nmanager = "boss"\nworkers = ["a", "b"]\n'
        "max_subtasks = 2\n"
    )
    assert team.mode == "hierarchical"
    assert team.agents == ["boss", "a", "b"]
    assert team.max_subtasks == 2


def test_p2p_team_defaults_entry_to_first_member() -> None:
    team = parse_team('name = "t"\nmode = "p2p"\nmembers = ["x", "y", "z"]\nhops = 2\n')
    assert team.entry == "x"
    assert team.hops == 2
    assert team.base_port == 0
    assert team.agents == ["x", "y", "z"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "t"\nworkers = ["a"]\n', "needs a manager"),
        ('name = "t"\nmanager = "m"\n', "at least one worker"),
        ('name = "t"\nmode = "p2p"\nmembers = ["a"]\n', "at least two members"),
        ('name = "t"\nmode = "p2p"\nmembers = ["a", "b"]\nentry = "c"\n', "not one of"),
        ('name = "t"\nmode = "p2p"\nmembers = ["a", "a"]\n', "must not repeat"),
        ('name = "t"\nmode = "ring"\nmembers = ["a", "b"]\n', "mode"),
        ('name = "t"\nmanager = "m"\nworkers = ["a"]\nmax_subtasks = 0\n', "max_subtasks"),
        ('name = "t"\nmanager = "m"\nworkers = ["a"]\ncolour = "red"\n', "colour"),
        ('name = "t"\nmanager = "bad name"\nworkers = ["a"]\n', "bad agent name"),
        ("name = ", "not valid TOML"),
    ],
)
def test_bad_team_files_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(AgentSpecInvalid, match=message) as info:
        parse_team(text, source="team.toml")
    assert "\n" not in info.value.message
    assert info.value.message.startswith("team.toml")


def test_missing_team_file_is_a_team_error(tmp_path: Path) -> None:
    with pytest.raises(TeamError, match="no team file"):
        load_team(tmp_path / "nope.toml")


def test_split_schema_limits_the_plan_to_the_workers() -> None:
    schema = split_schema(["a", "b"], 3)
    items = schema["properties"]["subtasks"]
    assert (items["minItems"], items["maxItems"]) == (1, 3)
    assert items["items"]["properties"]["worker"]["enum"] == ["a", "b"]


@pytest.mark.parametrize("path", sorted(teams_dir().glob("*.toml")), ids=lambda p: p.stem)
def test_team_templates_parse_and_name_agent_templates(path: Path) -> None:
    team = load_team(path)
    assert isinstance(team, TeamSpec)
    for name in team.agents:
        # Every member is an agent template, so the comment's 'agent create' works.
        assert isinstance(template_spec(name, name), AgentSpec)


def test_both_modes_have_a_template() -> None:
    modes = {load_team(p).mode for p in teams_dir().glob("*.toml")}
    assert modes == {"hierarchical", "p2p"}
