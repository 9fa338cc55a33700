"""Clipper's five input types and every spelling Clipper accepts, as in
core/input-types.ts (matched on the trimmed, lower-cased text)."""
from typing import Optional

INPUT_TYPES = ("bytes", "integers", "floats", "doubles", "strings")

_ALIASES = {
    "bytes": "bytes", "byte": "bytes", "b": "bytes",
    "integers": "integers", "ints": "integers", "integer": "integers", "int": "integers", "i": "integers",
    "floats": "floats", "float": "floats", "f": "floats",
    "doubles": "doubles", "double": "doubles", "d": "doubles",
    "strings": "strings", "string": "strings", "str": "strings", "strs": "strings", "s": "strings",
}


def parse_input_type(text: str) -> Optional[str]:
    """The canonical spelling of any accepted one; None when unknown."""
    return _ALIASES.get(text.strip().lower())


def unknown_input_type_message(text: str) -> str:
    return f"'{text}' is not a valid input type; use one of {', '.join(INPUT_TYPES)} (or a Clipper alias such as ints, double, str)"
