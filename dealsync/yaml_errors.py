"""A YAML syntax error as one short message a user can act on: where, what, and the offending line."""

from __future__ import annotations

from dataclasses import dataclass

import yaml

# libyaml where PyYAML was built with it (the pure-Python loader takes 40 ms a mapping file and a
# second for a thousand partners), the same safe loader otherwise; errors are described by the
# Python parser, whose messages name what it found.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def python_parse_error(text: str) -> yaml.YAMLError:
    """The pure-Python parser's error for a text libyaml refused (it names what it found instead)."""
    try:
        yaml.compose(text, Loader=yaml.SafeLoader)
        yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return exc
    return yaml.YAMLError("the file is not valid YAML")


@dataclass(frozen=True)
class YamlSyntax:
    """Where a YAML document stops parsing (1-based line and column) and why, with the line shown."""

    line: int
    column: int
    message: str


def describe(text: str, exc: yaml.YAMLError) -> YamlSyntax:
    """Turn PyYAML's multi-line error into `not valid YAML: <problem>` plus the line and a caret."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if mark is None:
        return YamlSyntax(0, 0, f"not valid YAML: {problem}")
    message = f"not valid YAML: {problem}"
    if context and context_mark is not None and context_mark.line != mark.line:
        message += f" ({context} that starts on line {context_mark.line + 1})"
    lines = text.splitlines()
    if 0 <= mark.line < len(lines):
        message += f"\n    {lines[mark.line]}\n    {' ' * mark.column}^"
    return YamlSyntax(mark.line + 1, mark.column + 1, message)
