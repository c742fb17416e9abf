"""Read `Pulumi.<stack>.yaml` as the Pulumi CLI reads it, with one-line errors that name the file.

The CLI parses YAML 1.2: only true and false are booleans (`yes`, `no`, `on` and `off` are strings,
where PyYAML's YAML 1.1 would make them booleans), a key given twice is an error, and every config key
lives in a namespace: the project's (`cicd`), a provider's, or `pulumi`.
"""

from __future__ import annotations

import difflib
import os
import re
from typing import Any

import yaml

PROJECT = "cicd"
# The project's, the providers' the program uses, and the CLI's own.
NAMESPACES = (PROJECT, "aws", "awsx", "docker", "pulumi")


class StackFileError(Exception):
    """A stack file the CLI would refuse, or one that cannot configure this program."""


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans, and duplicate keys refused."""


# YAML 1.2's core schema for booleans and numbers: no yes/no/on/off, no sexagesimal 1:30 (a string),
# 010 is ten and 0o10 is eight.
_YAML_11_ONLY = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _YAML_11_ONLY]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _int(loader: _Loader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


_Loader.add_constructor("tag:yaml.org,2002:int", _int)


def _mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, yaml.Mark] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key].line + 1})", mark
            )
        seen[key] = key_node.start_mark
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def read(path: str) -> dict[str, Any]:
    """The `config:` map of a stack file, checked as the CLI checks it."""
    name = os.path.basename(path)
    if not os.path.exists(path):
        raise StackFileError(
            f"no stack file {name}: create it with a config: section (see the README's "
            "configuration reference), or name another stack"
        )
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        document = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        raise StackFileError(f"{where}: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise StackFileError(f"{name}: {err}") from None
    if document is None:
        raise StackFileError(f"{name} is empty: it needs a config: section with at least aws:region")
    if not isinstance(document, dict):
        raise StackFileError(f"{name} must be a mapping with a config: section; got {type(document).__name__}")
    config = document.get("config")
    if config is None:
        raise StackFileError(f"{name} has no config: section; it needs at least aws:region")
    if not isinstance(config, dict):
        raise StackFileError(f"{name}: config must be a mapping of namespace:key to values")
    for key in config:
        namespace, colon, _ = str(key).partition(":")
        if not colon:
            raise StackFileError(f"{name}: config key {key!r} has no namespace; did you mean {PROJECT}:{key}?")
        if namespace not in NAMESPACES:
            close = difflib.get_close_matches(namespace, NAMESPACES, n=1)
            hint = f"did you mean {close[0]}:{key.partition(':')[2]}? " if close else ""
            raise StackFileError(
                f"{name}: config key {key!r} is in an unknown namespace {namespace!r}; {hint}"
                f"namespaces are {', '.join(NAMESPACES)}"
            )
    return config
