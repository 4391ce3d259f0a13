"""Tools from Python functions: the JSON Schema read from signatures and docstrings, the arguments turned
back into Python values. Model-free."""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal, Optional, Union

import pytest

from ondevice import Settings, ToolSchemaError, tool_from_function
from ondevice.engine.grammars import check_tools
from ondevice.schema.functions import call_with_arguments, parse_docstring
from ondevice.schema.tools import normalize_tools

pytestmark = pytest.mark.nomodel


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


def get_weather(city: str, unit: Unit = Unit.CELSIUS, days: Optional[int] = None) -> str:
    """The weather in a city,
    today or the next days.

    A second paragraph that is not the description.

    Args:
        city: the city's name,
            e.g. "Paris".
        unit (Unit): the temperature unit.
        days: how many days ahead.

    Returns:
        a sentence.
    """
    return f"{city} {unit.value} {days}"


def numpy_style(a: float, b: float = 1.0) -> float:
    """Divide a by b.

    Parameters
    ----------
    a : float
        The dividend.
    b : float, optional
        The divisor.

    Returns
    -------
    float
    """
    return a / b


def test_google_docstring_types_and_defaults():
    tool = tool_from_function(get_weather)
    assert tool["name"] == "get_weather"
    assert tool["description"] == "The weather in a city, today or the next days."
    params = tool["parameters"]
    assert params["required"] == ["city"]
    assert params["properties"]["city"] == {"type": "string", "description": "the city's name, e.g. \"Paris\"."}
    assert params["properties"]["unit"] == {"enum": ["celsius", "fahrenheit"], "type": "string",
                                            "default": "celsius", "description": "the temperature unit."}
    assert params["properties"]["days"] == {"type": ["integer", "null"], "description": "how many days ahead."}
    check_tools([tool], Settings())  # the grammar compiles


def test_numpy_docstring():
    tool = tool_from_function(numpy_style)
    assert tool["description"] == "Divide a by b."
    assert tool["parameters"]["properties"] == {
        "a": {"type": "number", "description": "The dividend."},
        "b": {"type": "number", "description": "The divisor.", "default": 1.0}}
    assert tool["parameters"]["required"] == ["a"]


def test_annotated_containers_literal_and_union():
    def f(tags: Annotated[list[str], "labels to add"], mode: Literal["fast", "slow"],
          pair: tuple[int, str], weights: dict[str, float], anything: Any, either: Union[int, list[int]],
          flags: set[int] = frozenset(), rest: tuple[int, ...] = ()) -> None:
        """Do it."""
    props = tool_from_function(f)["parameters"]["properties"]
    assert props["tags"] == {"type": "array", "items": {"type": "string"}, "description": "labels to add"}
    assert props["mode"] == {"enum": ["fast", "slow"], "type": "string"}
    assert props["pair"] == {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}],
                             "minItems": 2, "maxItems": 2}
    assert props["weights"] == {"type": "object", "additionalProperties": {"type": "number"}}
    assert props["anything"] == {}
    assert props["either"] == {"anyOf": [{"type": "integer"}, {"type": "array", "items": {"type": "integer"}}]}
    assert props["flags"] == {"type": "array", "items": {"type": "integer"}}  # a frozenset is no JSON value
    assert props["rest"] == {"type": "array", "items": {"type": "integer"}, "default": []}
    normalize_tools([tool_from_function(f)])


try:  # pydantic is optional; the models sit at module level, where postponed annotations resolve
    import pydantic

    class Address(pydantic.BaseModel):
        street: str
        city: str = pydantic.Field(description="the city")

    class Order(pydantic.BaseModel):
        to: Address
        count: int = 1

    def ship(order: Order, note: Annotated[str, pydantic.Field(description="for the driver")] = "") -> str:
        """Ship an order."""
        assert isinstance(order, Order) and isinstance(order.to, Address)
        return f"{order.count} to {order.to.city}"
except ImportError:
    pydantic = None


@pytest.mark.skipif(pydantic is None, reason="pydantic is not installed")
def test_pydantic_models_and_field_descriptions():
    tool = tool_from_function(ship)
    params = tool["parameters"]
    assert params["properties"]["note"]["description"] == "for the driver"
    assert params["properties"]["order"]["properties"]["to"] == {"$ref": "#/$defs/Address"}
    assert "Address" in params["$defs"]  # hoisted to the root, where the ref points
    check_tools([tool], Settings())
    assert call_with_arguments(ship, {"order": {"to": {"street": "1 Main St", "city": "Oslo"}}}) == "1 to Oslo"


def test_arguments_converted_to_declared_types():
    assert call_with_arguments(get_weather, {"city": "Rome", "unit": "fahrenheit"}) == "Rome fahrenheit None"

    def g(pair: tuple[int, str], units: list[Unit], maybe: Optional[Unit] = None) -> Any:
        return pair, units, maybe
    assert call_with_arguments(g, {"pair": [1, "a"], "units": ["celsius"], "maybe": "fahrenheit"}) == \
        ((1, "a"), [Unit.CELSIUS], Unit.FAHRENHEIT)


def test_unrepresentable_signatures_are_refused_by_name():
    def star(*args: int) -> None: ...
    def kw(**kwargs: int) -> None: ...
    def obj(x: object, y: "Unit") -> None: ...
    def cls(x: ToolSchemaError) -> None: ...
    def keys(x: dict[int, str]) -> None: ...
    for fn, words in ((star, "'args'"), (kw, "'kwargs'"), (cls, "no JSON Schema for the type ToolSchemaError"),
                      (keys, "dict[str, ...]")):
        with pytest.raises(ToolSchemaError, match=words.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
            tool_from_function(fn)
    assert tool_from_function(obj)["parameters"]["properties"]["x"] == {}
    with pytest.raises(ToolSchemaError, match="has no name"):
        tool_from_function(lambda x: x)
    assert tool_from_function(lambda x: x, name="identity")["name"] == "identity"


def test_parse_docstring_without_sections():
    assert parse_docstring("") == ("", {})
    assert parse_docstring("One line.") == ("One line.", {})
    assert parse_docstring("Summary.\n\nArgs:\n  x: the x.\n  y: the y\n    continued.\n") == \
        ("Summary.", {"x": "the x.", "y": "the y continued."})
