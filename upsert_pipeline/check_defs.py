"""``python -m upsert_pipeline.check_defs``: every feed's ``defs.yaml`` checked without Dagster.

Each mistake is printed as ``<file>:<line>: <attribute>: <what is wrong> — <what to write>``,
validated by the very model the feed component is (``FeedSpec``), so what passes here loads. It
reads YAML and pydantic only (well under a second for a few feeds; ``dg check yaml`` loads Dagster
and takes tens of seconds). The code location runs the same check before it loads the defs
folder, so a broken feed's load error starts with the same line.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]
from pydantic import BaseModel, ValidationError

from upsert_pipeline.feed_spec import FeedSpec
from upsert_pipeline.feeds import COLUMN_TYPES, COMPONENT_TYPE, DEFS_DIR, cross_field_problems
from upsert_pipeline.landing.layout import CADENCES, Cadence

OTHER_TYPES = ("upsert_pipeline.components.ObservedDeltaTable",)
"""The defs folder's other component types: checked by their own component at load."""


class FeedDefinitionError(ValueError):
    """A feed's ``defs.yaml`` declares something invalid; the message starts with file:line."""


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node | None, yaml.Node | None]:
    """The (key node, value node) of ``part`` under ``node``."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == part:
                return key, value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return None, node.value[part]
    return None, None


def _locate(root: yaml.Node, loc: Sequence[str | int], message: str) -> int:
    """The 1-based line the error at ``loc`` is about."""
    node, line = root, root.start_mark.line + 1
    for part in loc:
        key, value = _child(node, part)
        if value is None and key is None:
            break
        line = (key or value).start_mark.line + 1  # type: ignore[union-attr]
        if value is None:
            break
        node = value
    # A model's own validator names the attribute it is about first: point at that attribute.
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if message.startswith(f"{key.value} ") or message.startswith(f"{key.value} ["):
                return int(value.start_mark.line) + 1
            if message.startswith("landing path") and key.value == "landing":
                return int(value.start_mark.line) + 1
    return int(line)


def _model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    model: Any = FeedSpec
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        inner = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)]
        models = [a for a in inner if issubclass(a, BaseModel)]
        if not models:
            return None
        model = models[0]
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _hint(error: dict[str, Any], value: object) -> str:
    """What to write instead, for the usual mistakes."""
    loc = error["loc"]
    if error["type"] == "extra_forbidden":
        model = _model_at(loc[:-1])
        names = list(model.model_fields) if model else []
        close = difflib.get_close_matches(str(loc[-1]), names, n=1)
        if close:
            return f"did you mean {close[0]}:?"
        return f"allowed here: {', '.join(names)}" if names else "remove it"
    if error["type"] == "list_type" and isinstance(value, str):
        return f"write {loc[-1]}: [{value}] (a list, even of one)"
    if loc and loc[-1] == "type" and "unknown column type" in error["msg"]:
        close = difflib.get_close_matches(str(value), COLUMN_TYPES, n=1)
        return f"did you mean type: {close[0]}?" if close else ""
    if error["type"] == "literal_error":
        return str(error["msg"]).replace("Input should be", "write")
    return ""


def _value_at(document: object, loc: Sequence[str | int]) -> object:
    value: Any = document
    for part in loc:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _shown(path: Path) -> Path:
    """``path`` relative to the working directory when under it (as an editor opens it)."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


def _cross_field(attributes: dict[str, Any]) -> list[str]:
    """``feeds.cross_field_problems`` on raw attributes, as far as their shapes allow."""
    columns = attributes.get("columns")
    if not isinstance(columns, list) or not all(isinstance(c, dict) for c in columns):
        return []
    names = [str(c.get("name")) for c in columns]
    keys = attributes.get("keys")
    partitions = attributes.get("partitions") or {}
    landing = attributes.get("landing") or {}
    declared = partitions.get("cadence") if isinstance(partitions, dict) else None
    cadence: Cadence = next((c for c in CADENCES if c == declared), "daily")
    column = attributes.get("partition_column")
    return cross_field_problems(
        name=str(attributes.get("name")),
        columns={str(c.get("name")): str(c.get("type")) for c in columns},
        column_names=names,
        keys=[str(k) for k in keys] if isinstance(keys, list) else [],
        partition_column=column if isinstance(column, str) else None,
        cadence=cadence,
        landing_path=landing.get("path") if isinstance(landing, dict) else None,
    )


def check_file(path: Path, *, relative: bool = False) -> list[str]:
    """The mistakes of one ``defs.yaml`` (none for a valid feed, or for another component);
    ``relative``: name the file relative to the working directory when under it."""
    text = path.read_text()
    path = _shown(path) if relative else path
    try:
        root = yaml.compose(text)
        document = yaml.safe_load(text)
    except yaml.YAMLError as broken:
        mark = getattr(broken, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        return [f"{path}:{line}: not valid YAML: {broken}"]
    if not isinstance(document, dict):
        return [f"{path}:1: not a mapping; a feed starts with type: {COMPONENT_TYPE}"]
    kind = document.get("type")
    if kind in OTHER_TYPES:
        return []
    if kind != COMPONENT_TYPE:
        _, node = _child(root, "type")
        line = node.start_mark.line + 1 if node is not None else 1
        close = difflib.get_close_matches(str(kind), [COMPONENT_TYPE, *OTHER_TYPES], n=1)
        fix = f"did you mean type: {close[0]}?" if close else f"a feed is type: {COMPONENT_TYPE}"
        return [f"{path}:{line}: type: unknown component type {kind!r} — {fix}"]
    attributes = document.get("attributes")
    _, attributes_node = _child(root, "attributes")
    if not isinstance(attributes, dict) or attributes_node is None:
        return [f"{path}:1: attributes: missing; a feed declares name, description, columns, keys"]
    try:
        FeedSpec.model_validate(attributes)
    except ValidationError as invalid:
        problems = []
        for error in invalid.errors():
            loc = tuple(error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = f"unknown attribute {loc[-1]!r}"
            value = _value_at(attributes, loc)
            where = ".".join(str(part) for part in loc) or "attributes"
            hint = _hint(dict(error), value)
            for part in message.splitlines():
                line = _locate(attributes_node, loc, part)
                problems.append(f"{path}:{line}: {where}: {part}" + (f" — {hint}" if hint else ""))
        if not any(
            error["type"] == "value_error" and not error["loc"] for error in invalid.errors()
        ):
            # The attributes' own errors stopped pydantic before it compared them: compare what
            # can be compared, so one run names every mistake.
            for part in _cross_field(attributes):
                line = _locate(attributes_node, (), part)
                problems.append(f"{path}:{line}: attributes: {part}")
        return sorted(problems, key=lambda problem: int(problem.split(":")[1]))
    return []


def check_folder(defs_dir: Path = DEFS_DIR, *, relative: bool = False) -> list[str]:
    """The mistakes of every ``<defs_dir>/*/defs.yaml``, file by file."""
    paths = sorted(defs_dir.glob("*/defs.yaml"))
    return [problem for path in paths for problem in check_file(path, relative=relative)]


def raise_for_mistakes(defs_dir: Path = DEFS_DIR) -> None:
    """Raises ``FeedDefinitionError`` naming the first mistake (then the others), if any."""
    if problems := check_folder(defs_dir):
        raise FeedDefinitionError("\n".join(problems))


def main(argv: list[str] | None = None) -> int:
    """Prints each mistake; exits 1 if there is one."""
    folders = [Path(arg) for arg in (argv if argv is not None else sys.argv[1:])] or [DEFS_DIR]
    problems = [problem for folder in folders for problem in check_folder(folder, relative=True)]
    for problem in problems:
        print(problem)
    feeds = sum(len(list(folder.glob("*/defs.yaml"))) for folder in folders)
    print(
        f"{len(problems)} mistake(s) in {feeds} defs.yaml file(s)"
        if problems
        else f"{feeds} defs.yaml file(s) valid"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
