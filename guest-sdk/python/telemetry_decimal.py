"""format_decimal: a number as exact decimal text with a fixed number of places, rounded half to
even on the number's exact binary value: the same bytes as the Rust, JavaScript and C SDKs'
``format_decimal`` / ``formatDecimal`` (all four are tested against guest-sdk/decimal-cases.tsv).
Plain Python, no imports from the component bindings, so it can be tested on its own
(``python3 -m unittest discover -s guest-sdk/python -p 'test_*.py'``)."""

import math


def format_decimal(x: float, places: int) -> str:
    """``x`` with exactly ``places`` digits after the point, from its exact value rounded half to
    even: ``format_decimal(2982.8125, 3)`` is ``"2982.812"``, ``format_decimal(0.125, 2)`` is
    ``"0.12"``, never an exponent. A result that rounds to zero has no sign. NaN is ``"NaN"``,
    infinities ``"inf"``, ``"-inf"``."""
    if not isinstance(places, int) or places < 0:
        raise ValueError(f"format_decimal: places must be a whole number >= 0, got {places!r}")
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    # Python's fixed-point formatting of a float is exact and rounds ties to even.
    text = f"{x:.{places}f}"
    if text.startswith("-") and set(text[1:]) <= {"0", "."}:
        text = text[1:]
    return text
