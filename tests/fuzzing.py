"""Hypothesis profiles and strategies for the property tests of odrun's untrusted-input parsers.

Profiles (select with ``ODRUN_HYPOTHESIS_PROFILE``):

- ``ci`` (default): few examples, derandomized, no example database, so the whole
  property suite stays well under a minute on a shared 2-core machine and a CI run
  is reproducible;
- ``dev``: 10x the examples, random seeds, for a developer hunting a bug;
- ``thorough``: 100x the examples, no deadline, for a nightly or pre-release run.

Strategies mutate REAL portal documents (copies under ``tests/data/records``): keys
dropped, values replaced with the wrong type, huge numbers, NaN, deep nesting,
unicode and control characters, path tricks; not only random text.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

with warnings.catch_warnings():
    # hypothesis imports libcst to print a failing example as a patch, and libcst warns
    # (DeprecationWarning, an error under filterwarnings=error) inside pytest's report hook,
    # which hides the failure behind an INTERNALERROR: import it once here, quietly
    warnings.simplefilter("ignore")
    with contextlib.suppress(ImportError):  # hypothesis without its codemods extra
        import hypothesis.extra._patching  # noqa: F401

DATA = Path(__file__).resolve().parent / "data"

#: examples per property in the ci profile; the other profiles scale it
CI_EXAMPLES = 30
_COMMON: dict[str, Any] = {
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}
settings.register_profile(
    "ci", max_examples=CI_EXAMPLES, deadline=5000, derandomize=True, database=None, **_COMMON
)
settings.register_profile("dev", max_examples=CI_EXAMPLES * 10, deadline=5000, **_COMMON)
settings.register_profile("thorough", max_examples=CI_EXAMPLES * 100, deadline=None, **_COMMON)
settings.load_profile(os.environ.get("ODRUN_HYPOTHESIS_PROFILE", "ci"))

#: small real records, with and without raw file indices, CMS and non-CMS
RECORD_IDS = ("3005", "133", "11537", "221", "1102", "258", "93946", "5201", "718", "30522")


def real_record(recid: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA / "records" / f"{recid}.json").read_text("utf-8"))
    return doc


RECORDS = {recid: real_record(recid) for recid in RECORD_IDS}


def index_loader(recid: str) -> Callable[[Mapping[str, Any]], bytes]:
    """Reads a record's raw index files from ``tests/data/file-indices`` (MetadataError if not)."""
    from odrun.errors import MetadataError

    def load(entry: Mapping[str, Any]) -> bytes:
        name = str(entry.get("uri") or "").rsplit("/", 1)[-1]
        path = DATA / "file-indices" / recid / name
        if not name or not path.is_file():
            raise MetadataError(f"index {name!r} is not a test fixture")
        return path.read_bytes()

    return load


# -- hostile values ----------------------------------------------------------------------

#: texts that broke (or could break) a parser: digits Python's int() refuses, URL syntax
#: urllib refuses, path tricks, terminal escapes, lone surrogates, huge strings
NASTY_TEXTS = (
    "",
    " ",
    "²",
    "٣٤",
    "1e999",
    "NaN",
    "-1",
    "0" * 5000 + "1",
    "9" * 5000,
    "..",
    "../../etc/passwd",
    "/etc/passwd",
    "a/../../b",
    "a\x00b",
    "\x1b[31mred\x1b[0m",
    "a\\b",
    "file:///etc/passwd",
    "root://",
    "https://[::1/record/416",
    "http://[::1]:99999/x",
    "root://host//eos/../x.root",
    "\u202egnp.exe",
    "\ud800",
    "a/./b",
    "//",
    "x" * 5000,
)


def nested(depth: int) -> list[Any]:
    """``[[[...]]]``: deep enough to hurt recursive code, shallow enough to deep-copy."""
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


deep_nesting = st.integers(min_value=20, max_value=200).map(nested)


def dumps(doc: Any) -> bytes:
    """``doc`` as JSON bytes, the way a hostile server may send it (NaN, lone surrogates);
    an int json refuses to print (> 4300 digits) is sent as its digits."""
    try:
        text = json.dumps(doc, default=str)
    except ValueError:
        text = '{"size": ' + "9" * 5000 + "}"
    return text.encode("utf-8", "surrogatepass")


nasty_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([-1, 0, 2**63, 2**64 + 1, 10**400, 10**5000]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(NASTY_TEXTS),
)

nasty_values = st.one_of(
    nasty_scalars,
    st.sampled_from(NASTY_TEXTS),
    st.lists(nasty_scalars, max_size=3),
    st.dictionaries(st.text(max_size=8), nasty_scalars, max_size=3),
    deep_nesting,
)


#: the keys parsers read; a mutation hits one of these in half the cases
READ_KEYS = frozenset(
    {
        *("recid", "id", "metadata", "files", "_file_indices", "uri", "filename", "checksum"),
        *("size", "type", "key", "number_files", "distribution", "title", "doi", "experiment"),
        *("authors", "name", "collaboration", "system_details", "container_images"),
        *("date_published", "license", "revision"),
    }
)


def _slots(doc: Any, depth: int = 0) -> Iterator[tuple[Any, Any]]:
    """Every (container, key) in ``doc``: what a mutation can drop or replace."""
    if depth > 6:
        return
    items = (
        doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    )
    for key, value in items:
        yield doc, key
        yield from _slots(value, depth + 1)


@st.composite
def mutated(draw: st.DrawFn, doc: Any, max_mutations: int = 4) -> Any:
    """A deep copy of ``doc`` with 1..max_mutations hostile changes at random places."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(min_value=1, max_value=max_mutations))):
        slots = list(_slots(doc))
        read = [(c, k) for c, k in slots if k in READ_KEYS or isinstance(c, list)]
        if read and draw(st.booleans()):
            slots = read
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        action = draw(st.sampled_from(("drop", "replace", "replace", "wrap", "duplicate")))
        if action == "drop":
            del container[key]
        elif action == "replace":
            container[key] = draw(nasty_values)
        elif action == "wrap":  # the right value, the wrong shape (a list or an object)
            container[key] = draw(st.sampled_from(([container[key]], {"value": container[key]})))
        elif isinstance(container, list):
            container.append(copy.deepcopy(container[key]))
        else:
            container[key + "_" if isinstance(key, str) else key] = container[key]
    return doc


@st.composite
def mutated_records(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """(the recid the document came from, a hostile variant of that real record)."""
    recid = draw(st.sampled_from(RECORD_IDS))
    return recid, draw(mutated(RECORDS[recid]))


@st.composite
def hostile_file_entries(draw: st.DrawFn) -> dict[str, Any]:
    """One ``files[]`` entry whose uri/filename/checksum/size try to be unsafe."""
    host = draw(st.sampled_from(("eospublic.cern.ch", "h", "[::1]", "[::1", "")))
    scheme = draw(st.sampled_from(("root", "https", "http", "file", "ftp", "ROOT", "")))
    path = draw(
        st.one_of(
            st.sampled_from(NASTY_TEXTS),
            st.lists(st.sampled_from(("a", "b", "..", ".", "", "x.root", "%2e%2e", "c%2Fd"))).map(
                "/".join
            ),
            st.text(max_size=20),
        )
    )
    entry: dict[str, Any] = {"uri": f"{scheme}://{host}//{path}" if scheme else path}
    if draw(st.booleans()):
        entry["filename"] = draw(st.one_of(st.sampled_from(NASTY_TEXTS), st.text(max_size=12)))
    entry["checksum"] = draw(
        st.one_of(
            st.none(),
            st.sampled_from(("adler32:0a1b2c3d", "sha1:" + "a" * 40, "alder32:1", "md5:xyz")),
            nasty_scalars,
        )
    )
    entry["size"] = draw(nasty_scalars)
    return entry
