"""Command-line flags generated from frozen config dataclasses: ``--<section>.<field>``."""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, get_args, get_origin, get_type_hints


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(element type, is_sequence) for a field annotation; Optional[...] unwraps to its type."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return _base_type(args[0])
    if origin in (tuple, list):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        return (args[0] if args else str), True
    if origin is typing.Literal:
        return type(get_args(tp)[0]), False
    return tp, False


def _parse_bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _choices(tp: Any) -> list | None:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for a in get_args(tp):
            if get_origin(a) is typing.Literal:
                return list(get_args(a))
    return list(get_args(tp)) if origin is typing.Literal else None


def add_dataclass_flags(parser: argparse.ArgumentParser, prefix: str, cls: type) -> None:
    """Add one ``--prefix.field`` flag per field of dataclass ``cls`` (default: keep the dataclass's)."""
    hints = get_type_hints(cls)
    group = parser.add_argument_group(f"{prefix} settings ({cls.__name__})")
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp, is_seq = _base_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        kwargs: dict[str, Any] = {"dest": f"{prefix}.{f.name}", "default": argparse.SUPPRESS,
                                  "help": f"{f.metadata.get('help', '')} (default: {default!r})".strip()}
        if tp is bool:
            kwargs.update(type=_parse_bool, metavar="BOOL")
        elif tp in (int, float, str):
            kwargs["type"] = tp
        choices = _choices(hints[f.name])
        if choices:
            kwargs["choices"] = choices
        if is_seq:
            kwargs["nargs"] = "+"
        group.add_argument(f"--{prefix}.{f.name}", **kwargs)


def overrides_from_args(args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    """The ``--prefix.*`` values the user actually gave, as {field: value}."""
    start = f"{prefix}."
    return {k[len(start):]: (tuple(v) if isinstance(v, list) else v)
            for k, v in vars(args).items() if k.startswith(start)}


def dataclass_from_args(args: argparse.Namespace, prefix: str, base: Any) -> Any:
    """``base`` (a dataclass instance) with the given ``--prefix.*`` flags applied."""
    return dataclasses.replace(base, **overrides_from_args(args, prefix))
