"""The Actor's tool box: schemas from functions, the safe calculator, error paths that
never raise out of a call, and tools published by installed packages (entry points)."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any, Literal

import jsonschema
import pytest

from sahara_cli.agent.spec import AgentSpec
from sahara_cli.agent.tools import registry as tools_mod
from sahara_cli.agent.tools.builtin import SPECS, CalculatorError, builtin_tool, evaluate
from sahara_cli.agent.tools.context import ToolContext
from sahara_cli.agent.tools.registry import (
    ANSWER,
    Tool,
    ToolBox,
    build_toolbox,
    entry_point_tools,
    tool_from_function,
)
from sahara_cli.errors import ToolArgumentsInvalid, ToolFailed, ToolNotFound

# -- schemas from functions ----------------------------------------------------------


def weather(
    city: str, days: int = 3, unit: Literal["C", "F"] = "C", note: str | None = None
) -> str:
    """Forecast the weather of a city.

    Args:
        city: Name of the city.
        days: How many days ahead,
            at most ten.
        unit: Celsius or Fahrenheit.
    """
    return f"{city} {days} {unit} {note}"


def test_schema_from_signature_hints_and_docstring() -> None:
    tool = tool_from_function(weather)
    assert tool.name == "weather"
    assert tool.description == "Forecast the weather of a city."
    params = tool.parameters
    jsonschema.Draft202012Validator.check_schema(params)
    assert params["required"] == ["city"]
    assert params["additionalProperties"] is False
    props = params["properties"]
    assert props["city"] == {"type": "string", "description": "Name of the city."}
    assert props["days"]["type"] == "integer" and props["days"]["default"] == 3
    assert props["days"]["description"] == "How many days ahead, at most ten."
    assert props["unit"]["enum"] == ["C", "F"]
    assert props["note"]["type"] == ["string", "null"]


def test_schema_of_lists_floats_bools_and_rest_args() -> None:
    def tally(values: list[float], exact: bool = False, *rest: Any, **extra: Any) -> float:
        """Sum numbers."""
        return sum(values)

    tool = tool_from_function(tally, name="sum", description="Add them up.")
    assert tool.name == "sum" and tool.description == "Add them up."
    assert tool.parameters["properties"] == {
        "values": {"type": "array", "items": {"type": "number"}},
        "exact": {"type": "boolean", "default": False},
    }
    box = ToolBox([tool])
    assert box.call("sum", {"values": [1, 2.5]}).output == 3.5


def test_positional_only_parameters_are_refused() -> None:
    def f(x: int, /) -> int:
        return x

    with pytest.raises(ToolArgumentsInvalid, match="positional-only"):
        tool_from_function(f)


# -- the calculator --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("7 // 2 + 7 % 2", 4),
        ("-2 ** 2", -4),
        ("2 ^ 10", 1024),
        ("+5 - -5", 10),
        ("sqrt(16) + abs(-1)", 5.0),
        ("max(1, 2, 3) - min(4, 5)", -1),
        ("round(pi, 2)", 3.14),
        ("round(123456, -2)", 123500),
        ("round(2 ** 100, -30)", round(2**100, -30)),
        ("round(1.5, 30)", 1.5),
        ("round(2.5)", 2),
        ("10 / 4", 2.5),
        ("2 ** 4095", 2**4095),
    ],
)
def test_calculator_evaluates_arithmetic(expression: str, value: float) -> None:
    assert evaluate(expression) == value


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("__import__('os').system('echo pwned')", "only these functions"),
        ("().__class__.__bases__[0].__subclasses__()", "only these functions"),
        ("(1).__class__", "Attribute is not allowed"),
        ("open('/etc/passwd').read()", "only these functions"),
        ("os", "unknown name 'os'"),
        ("lambda: 1", "not allowed"),
        ("[1, 2, 3]", "not allowed"),
        ("'a' * 10", "only numbers"),
        ("True + 1", "only numbers"),
        ("9 ** 9 ** 9", "too large"),
        ("2 ** 100000", "too large"),
        ("10 ** 5000", "too large"),
        ("2.0 ** 5000", "too large"),
        ("1e308 * 10", "not a finite number"),
        ("1 / 0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("sqrt(-1)", "math error"),
        ("(-8) ** 0.5", "not a real number"),
        ("1 < 2", "not allowed"),
        ("x = 1", "not an arithmetic expression"),
        ("1 +", "not an arithmetic expression"),
        ("", "empty"),
        ("1+" * 300 + "1", "longer than"),
        ("sqrt(x=4)", "positional"),
        ("math.sqrt(4)", "only these functions"),
        ("round(1, -31)", "out of range"),
        ("round(1.5, 10**100)", "out of range"),
        ("round(1, 0.5)", "whole number"),
        ("round(1, 2, 3)", "math error"),
    ],
)
def test_calculator_refuses_with_a_clear_reason(expression: str, reason: str) -> None:
    with pytest.raises(CalculatorError, match=reason):
        evaluate(expression)


AMPLIFYING = (
    "round(1, -10**100)",
    "round(9, -(2 ** 4000))",
    "round(-1, -10 ** 9) + round(1, -10 ** 9)",
    "max(round(1, -10**100), 1)",
)


def test_calculator_attacks_fail_fast_instead_of_hanging() -> None:
    """Each of these once made ``round`` build 10**n for a huge n and hang the agent;
    evaluated in a child process so a regression fails instead of hanging the tests."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from sahara_cli.agent.tools.builtin import CalculatorError, evaluate\n"
        "for expression in sys.argv[1:]:\n"
        "    try:\n"
        "        evaluate(expression)\n"
        "    except CalculatorError as exc:\n"
        "        print(exc)\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", script, *AMPLIFYING],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the calculator hung on an amplifying expression")
    reasons = done.stdout.splitlines()
    assert len(reasons) == len(AMPLIFYING)
    assert all("out of range" in reason for reason in reasons), reasons


def test_calculator_tool_reports_failures_as_observations() -> None:
    box = ToolBox([builtin_tool("calculator", _ctx_without_home())])
    good = box.call("calculator", '{"expression": "6 * 7"}')
    assert good.ok and good.output == {"expression": "6 * 7", "result": 42}
    bad = box.call("calculator", {"expression": "__import__('os')"})
    assert not bad.ok
    assert bad.error is not None and bad.error.startswith("ToolFailed: only these functions")
    assert "\n" not in bad.error


# -- ToolBox error paths ---------------------------------------------------------------


def _boom(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(f"{reason}\nsecond line that must not show")


def _echo(text: str, times: int = 1) -> str:
    """Repeat text."""
    return text * times


@pytest.fixture
def box() -> ToolBox:
    return ToolBox([tool_from_function(_echo, name="echo"), tool_from_function(_boom, name="boom")])


def test_unknown_tool_is_a_clean_failed_call(box: ToolBox) -> None:
    call = box.call("rm_rf", {"path": "/"})
    assert not call.ok and call.tool == "rm_rf"
    assert call.error == "ToolNotFound: no tool named 'rm_rf'; this agent has: boom, echo"
    with pytest.raises(ToolNotFound):
        box.run("rm_rf", {})


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("{not json", "arguments of echo are not JSON"),
        ("[1, 2]", "must be a JSON object, not list"),
        ({}, "'text' is a required property"),
        ({"text": 5}, "at text: 5 is not of type 'string'"),
        ({"text": "a", "extra": 1}, "Additional properties are not allowed"),
        ({"text": "a", "times": "3"}, "at times: '3' is not of type 'integer'"),
    ],
)
def test_malformed_arguments_are_a_clean_failed_call(
    box: ToolBox, arguments: Any, message: str
) -> None:
    call = box.call("echo", arguments)
    assert not call.ok
    assert call.error is not None and call.error.startswith("ToolArgumentsInvalid: ")
    assert message in call.error
    with pytest.raises(ToolArgumentsInvalid):
        box.run("echo", arguments)


def test_a_tool_that_raises_is_a_clean_failed_call(box: ToolBox) -> None:
    call = box.call("boom", {"reason": "disk on fire"})
    assert not call.ok and call.arguments == {"reason": "disk on fire"}
    assert call.error == "ToolFailed: RuntimeError: disk on fire"
    assert call.seconds >= 0
    with pytest.raises(ToolFailed, match="disk on fire"):
        box.run("boom", {"reason": "disk on fire"})
    # The box still works after a failure.
    again = box.call("echo", '{"text": "ab", "times": 2}')
    assert again.ok and again.output == "abab" and again.arguments == {"text": "ab", "times": 2}


def test_empty_arguments_mean_none(box: ToolBox) -> None:
    box.add(tool_from_function(lambda: "pong", name="ping"))
    assert box.call("ping", "").output == "pong"
    assert box.call("ping", None).output == "pong"


def test_duplicate_names_and_bad_schemas_are_refused(box: ToolBox) -> None:
    with pytest.raises(ToolArgumentsInvalid, match="two tools are named 'echo'"):
        box.add(tool_from_function(_echo, name="echo"))
    with pytest.raises(ToolArgumentsInvalid, match="invalid parameters schema"):
        box.add(Tool("bad", "bad", {"type": "objekt"}, lambda: None))
    with pytest.raises(ToolArgumentsInvalid, match="bad tool name"):
        box.add(Tool("no spaces", "x", {"type": "object"}, lambda: None))


# -- schemas for constrained calls -------------------------------------------------------


def test_call_schema_accepts_each_tool_with_its_own_arguments_only(box: ToolBox) -> None:
    schema = box.call_schema()
    validator = jsonschema.Draft202012Validator(schema)
    validator.check_schema(schema)
    assert validator.is_valid({"tool": "echo", "arguments": {"text": "hi"}})
    assert validator.is_valid({"tool": "boom", "arguments": {"reason": "x"}})
    assert not validator.is_valid({"tool": "echo", "arguments": {"reason": "x"}})
    assert not validator.is_valid({"tool": "nope", "arguments": {}})
    assert not validator.is_valid({"tool": "echo"})
    with pytest.raises(ToolNotFound, match="no tools"):
        ToolBox().call_schema()


def test_choose_then_fill_schemas(box: ToolBox) -> None:
    choice = box.tool_choice_schema()
    jsonschema.validate({"thought": "look it up", "tool": "echo"}, choice)
    jsonschema.validate({"thought": "", "tool": ANSWER}, choice)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"thought": "", "tool": "nope"}, choice)
    assert box.tool_choice_schema(thought=False)["required"] == ["tool"]
    assert box.arguments_schema("echo")["required"] == ["text"]
    with pytest.raises(ToolNotFound):
        box.arguments_schema("nope")


def test_describe_lists_every_tool_on_one_line(box: ToolBox) -> None:
    lines = box.describe().splitlines()
    assert lines == [
        "- boom(reason: string): Always fails.",
        "- echo(text: string, times: integer = 1): Repeat text.",
    ]


def test_builtin_schemas_are_valid_and_described() -> None:
    box = ToolBox([builtin_tool(name, _ctx_without_home()) for name in SPECS])
    assert sorted(box.tools) == sorted(SPECS)
    for tool in box.tools.values():
        jsonschema.Draft202012Validator.check_schema(tool.parameters)
        assert tool.description
    with pytest.raises(ToolNotFound):
        builtin_tool("shell", _ctx_without_home())


# -- entry points ----------------------------------------------------------------------


def shout(text: str) -> str:
    """Say it loudly."""
    return text.upper()


PREBUILT = Tool(
    "whisper",
    "Say it softly.",
    {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    lambda text: text.lower(),
)


@pytest.fixture
def installed_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in for an installed distribution that publishes tools under the
    ``sahara.tools`` entry-point group (real EntryPoint objects, loaded by import)."""
    module = __name__
    published = [
        EntryPoint("shout", f"{module}:shout", "sahara.tools"),
        EntryPoint("whisper", f"{module}:PREBUILT", "sahara.tools"),
        EntryPoint("broken", "no_such_module_for_sahara:tool", "sahara.tools"),
        EntryPoint("number", f"{module}:NOT_CALLABLE", "sahara.tools"),
    ]

    def fake_entry_points(*, group: str) -> list[EntryPoint]:
        return [ep for ep in published if ep.group == group]

    monkeypatch.setattr("importlib.metadata.entry_points", fake_entry_points)


NOT_CALLABLE = 42


@pytest.mark.usefixtures("installed_plugins")
def test_entry_point_tools_load_functions_and_prebuilt_tools(tmp_path: Path) -> None:
    found = entry_point_tools(["shout", "whisper"])
    assert [t.name for t in found] == ["shout", "whisper"]
    assert {t.source for t in found} == {"entry_point"}
    spec = AgentSpec(name="a", tools={"builtin": ["calculator"], "entry_points": ["shout"]})
    with ToolContext(tmp_path, rpc_url="", vault_config=_vault_cfg(), address=None) as ctx:
        box = build_toolbox(spec, ctx)
        assert sorted(box.tools) == ["calculator", "shout"]
        assert box.call("shout", {"text": "hi"}).output == "HI"
        box.close()


@pytest.mark.usefixtures("installed_plugins")
def test_missing_or_broken_entry_points_fail_clearly() -> None:
    with pytest.raises(ToolNotFound, match=r"no tool entry point 'nope' in group sahara.tools"):
        entry_point_tools(["nope"])
    with pytest.raises(ToolFailed, match=r"'broken' .* failed to load"):
        entry_point_tools(["broken"])
    with pytest.raises(ToolFailed, match="neither a Tool nor a callable"):
        entry_point_tools(["number"])


# -- helpers ---------------------------------------------------------------------------


def _vault_cfg() -> Any:
    from sahara_cli.config import VaultSection

    return VaultSection()


def _ctx_without_home() -> ToolContext:
    return ToolContext(Path("/nonexistent"), rpc_url="", vault_config=_vault_cfg(), address="")


def test_tool_outputs_are_json() -> None:
    box = ToolBox([builtin_tool("calculator", _ctx_without_home())])
    call = box.call("calculator", {"expression": "2 ** 0.5"})
    assert json.loads(json.dumps(call.to_dict()))["output"]["result"] == pytest.approx(2**0.5)
    assert tools_mod.ENTRY_POINT_GROUP == "sahara.tools"


# -- retrieval with scopes and the license policy ------------------------------------


def test_retrieve_honours_scopes_policy_and_private_text(
    cli: Any, initialised: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sahara_cli.agent.tools.registry import retrieve
    from sahara_cli.identity.store import KeyStore
    from tests.conftest import PASSWORD

    notes = tmp_path / "okapi-notes.md"
    notes.write_text("Okapis feed on the forest edge at dawn and rest at noon.\n")
    recipes = tmp_path / "recipes.md"
    recipes.write_text("Bake the bread at two hundred degrees for forty minutes.\n")
    monkeypatch.setenv("SAHARA_PASSWORD", PASSWORD)
    for path, extra in ((notes, []), (recipes, ["--public"])):
        result = cli("--json", "--no-prompt", "vault", "add", str(path), *extra)
        assert result.exit_code == 0, result.stderr
    signer = KeyStore(initialised / "keystore").unlock(None, PASSWORD)
    other = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"

    def sources(**options: Any) -> dict[str, str]:
        with ToolContext(initialised, rpc_url="", **options) as ctx:
            return {s.name: s.text for s in retrieve(ctx, "okapi forest dawn", 4)}

    # The agent's own ID opens its private item; without the signer only public text.
    found = sources(signer=signer)
    assert set(found) == {"okapi-notes.md", "recipes.md"}
    assert "Okapis feed" in found["okapi-notes.md"]
    assert set(sources()) == {"recipes.md"}
    # Scopes are item-name globs.
    assert set(sources(signer=signer, scopes=["okapi-*"])) == {"okapi-notes.md"}
    # "owned" for another address: nothing; "any": all of the index.
    assert sources(signer=signer, address=other, policy="owned") == {}
    assert set(sources(address=other, policy="any")) == {"recipes.md"}
    with ToolContext(initialised, rpc_url="", signer=signer) as ctx:
        box = ToolBox([builtin_tool("vault_search", ctx)])
        hits = box.call("vault_search", {"query": "bread oven", "k": 1}).output["hits"]
        assert [h["name"] for h in hits] == ["recipes.md"] and hits[0]["asset_id"] is None
