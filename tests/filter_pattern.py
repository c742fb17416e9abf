"""A reader of CloudWatch Logs JSON filter patterns, enough to test ours against sample events.

It understands the documented form `{ $.a.b = "x" && ($.c != 1 || $.d = *) }`: selectors with
dots and [n] indexes, =, !=, <, <=, >, >= against strings, numbers, `*` (present) and NULL, and
&& / || with parentheses. A pattern it cannot read raises ValueError rather than guessing.
"""

from __future__ import annotations

import fnmatch
import json
import re

TOKEN = re.compile(
    r'\s*(\$(?:\.[\w-]+|\[\d+\])+|"(?:[^"\\]|\\.)*"|&&|\|\||!=|<=|>=|=|<|>|\(|\)|\*|NULL|-?\d+(?:\.\d+)?)'
)


def _tokens(body: str) -> list[str]:
    tokens, pos = [], 0
    body = body.strip()
    while pos < len(body):
        match = TOKEN.match(body, pos)
        if not match:
            raise ValueError(f"cannot read the pattern at {body[pos:]!r}")
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


def _select(event, selector: str):
    value = event
    for part in re.findall(r"\.([\w-]+)|\[(\d+)\]", selector):
        key, index = part
        if key:
            if not isinstance(value, dict) or key not in value:
                return _MISSING
            value = value[key]
        else:
            if not isinstance(value, list) or int(index) >= len(value):
                return _MISSING
            value = value[int(index)]
    return value


_MISSING = object()


def _compare(actual, op: str, expected: str) -> bool:
    if expected == "*":
        return actual is not _MISSING if op == "=" else actual is _MISSING
    if expected == "NULL":
        return (actual is None) if op == "=" else (actual is not None)
    if actual is _MISSING:
        return False
    if expected.startswith('"'):
        text = json.loads(expected)
        if not isinstance(actual, str):
            return op == "!="
        same = fnmatch.fnmatchcase(actual, text) if "*" in text else actual == text
        return same if op == "=" else not same
    number = float(expected)
    if isinstance(actual, bool) or not isinstance(actual, (int, float)):
        return op == "!="
    return {
        "=": actual == number,
        "!=": actual != number,
        "<": actual < number,
        "<=": actual <= number,
        ">": actual > number,
        ">=": actual >= number,
    }[op]


def matches(pattern: str, event: dict) -> bool:
    pattern = pattern.strip()
    if not (pattern.startswith("{") and pattern.endswith("}")):
        raise ValueError("only JSON filter patterns ({ … }) are supported")
    tokens = _tokens(pattern[1:-1])
    position = 0

    def peek():
        return tokens[position] if position < len(tokens) else None

    def take():
        nonlocal position
        position += 1
        return tokens[position - 1]

    def expression() -> bool:
        result = conjunction()
        while peek() == "||":
            take()
            right = conjunction()
            result = result or right
        return result

    def conjunction() -> bool:
        result = term()
        while peek() == "&&":
            take()
            right = term()
            result = result and right
        return result

    def term() -> bool:
        if peek() == "(":
            take()
            result = expression()
            if take() != ")":
                raise ValueError("unbalanced parentheses")
            return result
        selector, op, value = take(), take(), take()
        if not selector.startswith("$") or op not in ("=", "!=", "<", "<=", ">", ">="):
            raise ValueError(f"cannot read the comparison {selector} {op} {value}")
        return _compare(_select(event, selector), op, value)

    result = expression()
    if position != len(tokens):
        raise ValueError(f"unexpected {tokens[position]!r}")
    return result
