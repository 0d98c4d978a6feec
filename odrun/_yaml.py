"""The one door through which odrun reads YAML: safe tags only, bounded size and expansion.

Every YAML document odrun reads (reana.yaml, odrun.yaml, Snakemake config files,
image catalogs, cloud-init bases) goes through :func:`load_yaml`. Limits:

- **size**: at most :data:`MAX_BYTES` (16 MiB) of text; a larger file is refused
  before it is read;
- **aliases**: the nodes that aliases (``*name``, merge keys ``<<: *name``
  included) stand for, counted with everything nested in them, add up to at most
  :data:`MAX_ALIAS_NODES` (10,000) per document; an alias to a node that contains it
  (a recursive alias) is refused. A "billion laughs" document is refused while it
  is parsed, in well under a second and a few megabytes, before any of it is
  built or validated;
- **nodes**: at most :data:`MAX_NODES` (500,000) nodes per document, aliases
  counted as one; parsing stops at the first node over the limit;
- **nesting**: a document nested deeper than Python's recursion limit is refused;
- **duplicate keys**: a key given twice in one mapping is refused (YAML forbids it).

Parsing uses libyaml's C parser when PyYAML has it (7x faster), the composing is
always PyYAML's Python composer, where the counting happens. A text libyaml refuses as
a syntax error is parsed again by PyYAML's Python parser (it reads more of YAML 1.1).

Refusals and syntax errors raise ``error`` (the caller's family: UsageError for
the user's spec files, ConfigError for configuration) with one line that names
the file, and for syntax errors its line and column (1-based).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent, NodeEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from odrun.errors import OdrunError, UsageError

#: the largest YAML text odrun reads, in bytes
MAX_BYTES = 16 * 1024 * 1024
#: the most nodes that aliases may stand for in one document (nested ones counted)
MAX_ALIAS_NODES = 10_000
#: the most nodes one document may have
MAX_NODES = 500_000


class YamlLimitError(Exception):
    """Raised inside the loader; :func:`load_yaml` turns it into the caller's error."""


class _Bounds:
    """Composer hooks: count nodes and what aliases expand to, refuse recursive aliases."""

    anchors: dict[str, Node]

    def _start_counting(self) -> None:
        self._nodes = MAX_NODES
        self._alias_budget = MAX_ALIAS_NODES
        self._sizes: dict[int, int] = {}
        self._open: list[str] = []  # anchors being composed (an alias to one is recursive)

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()  # type: ignore[attr-defined]
        self._nodes -= 1
        if self._nodes < 0:
            raise YamlLimitError(f"more than {MAX_NODES} nodes")
        if isinstance(event, AliasEvent):
            if event.anchor in self._open:
                raise YamlLimitError(f"alias *{event.anchor} refers to a node that contains it")
            node = self.anchors.get(event.anchor or "")
            if node is not None:
                self._alias_budget -= self._expanded(node)
                if self._alias_budget < 0:
                    raise YamlLimitError(
                        f"aliases expand to more than {MAX_ALIAS_NODES} nodes "
                        "(a 'billion laughs' document?)"
                    )
            return super().compose_node(parent, index)  # type: ignore[misc, no-any-return]
        anchor = event.anchor if isinstance(event, NodeEvent) else None
        if anchor is None:
            return super().compose_node(parent, index)  # type: ignore[misc, no-any-return]
        self._open.append(anchor)
        try:
            return super().compose_node(parent, index)  # type: ignore[misc, no-any-return]
        finally:
            self._open.pop()

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        """A mapping, refusing a key given twice (YAML forbids it; PyYAML would keep the
        last value silently, so a corrected tolerance could be overridden unnoticed)."""
        seen: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                ident = (key_node.tag, key_node.value)
                if ident in seen:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key `{key_node.value}` (first at line {seen[ident] + 1})",
                        key_node.start_mark,
                    )
                seen[ident] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)  # type: ignore[misc, no-any-return]

    def _expanded(self, node: Node) -> int:
        """How many nodes ``node`` stands for, aliases inside it expanded (memoised)."""
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        size = 1
        if isinstance(node, SequenceNode):
            for child in node.value:
                size += self._expanded(child)
                if size > MAX_ALIAS_NODES:
                    break
        elif isinstance(node, MappingNode):
            for key, value in node.value:
                size += self._expanded(key) + self._expanded(value)
                if size > MAX_ALIAS_NODES:
                    break
        self._sizes[id(node)] = size
        return size


class _PyLoader(_Bounds, yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        yaml.SafeLoader.__init__(self, stream)
        self._start_counting()


_Loader: type[Any] = _PyLoader
if yaml.__with_libyaml__:  # libyaml parses, PyYAML's Python composer composes (and counts)
    from yaml._yaml import CParser
    from yaml.composer import Composer
    from yaml.constructor import SafeConstructor
    from yaml.resolver import Resolver

    class _CLoader(_Bounds, Composer, CParser, SafeConstructor, Resolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self._start_counting()

    _Loader = _CLoader


def _parse(text: str) -> Any:
    """The document, parsed by libyaml when present; a text libyaml calls a syntax error
    is parsed again by PyYAML's own parser, which defines what PyYAML reads (libyaml
    refuses some YAML 1.1 that it accepts: a flow mapping ``{a:{b: 1}}``, as in HEPData's
    own example tables). Limits apply to both."""
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError:
        if _Loader is _PyLoader:
            raise
    finally:
        loader.dispose()
    loader = _PyLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_yaml(
    source: Path | str,
    what: str,
    *,
    error: type[OdrunError] = UsageError,
    hint: str | None = None,
) -> Any:
    """The document in ``source`` (a file, or YAML text), within the limits above.

    ``what`` names the document in messages (e.g. ``"reana.yaml"``); ``error`` is
    raised for a file that cannot be read, is too large, expands too much or is
    not valid YAML.
    """
    if isinstance(source, Path):
        name = str(source)
        label = f"{what} {name}"
        try:
            size = source.stat().st_size
            if size > MAX_BYTES:
                raise error(_too_big(what, name, size), hint=hint)
            with source.open("rb") as f:
                raw = f.read(MAX_BYTES + 1)
        except OSError as exc:
            raise error(f"cannot read {what} {name}: {exc.strerror or exc}", hint=hint) from None
        if len(raw) > MAX_BYTES:  # it grew since stat
            raise error(_too_big(what, name, len(raw)), hint=hint)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(
                f"{what} {name} is not UTF-8 text (byte {exc.start}: {exc.reason})", hint=hint
            ) from None
    else:
        name = label = f"<{what}>"
        text = source
        if len(text) > MAX_BYTES or len(text.encode("utf-8", "replace")) > MAX_BYTES:
            raise error(_too_big(what, name, len(text.encode("utf-8", "replace"))), hint=hint)
    try:
        return _parse(text)
    except YamlLimitError as exc:
        raise error(f"{label}: {exc}: refused", hint=hint) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        problem = " ".join(str(exc.problem or exc.context or "syntax error").split())
        raise error(f"{where}: {what} is not readable YAML: {problem}", hint=hint) from None
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise error(f"{label} is not readable YAML: {detail}", hint=hint) from None
    except RecursionError:
        raise error(f"{label} is nested too deeply: refused", hint=hint) from None
    except (ValueError, OverflowError) as exc:  # an integer of more than 4300 digits, ...
        detail = " ".join(str(exc).split())[:200]
        raise error(f"{label} holds a value odrun cannot read: {detail}", hint=hint) from None


def _too_big(what: str, name: str, size: int) -> str:
    return f"{what} {name} is {size} bytes, more than the {MAX_BYTES} bytes odrun reads: refused"
