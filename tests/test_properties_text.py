"""Property tests: the small parsers of untrusted text (references, checksums, URI maps, options).

Each returns its typed result or raises an OdrunError subclass, for any text; and the
round trips hold: a parsed checksum re-formats to an equal value, a reference that
parses as a recid resolves to the same recid written as a record URL, a DOI keeps
its value through ``doi:``.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from odrun.checksum import ALGORITHMS, Checksum, parse_checksum
from odrun.cli.data import parse_size
from odrun.errors import ConfigError, InvalidReferenceError, MetadataError, UsageError
from odrun.records.model import RecordFile
from odrun.records.refs import RecordRef, parse_reference
from odrun.records.select import FileFilter, parse_ranges
from odrun.urls import ProtocolMap, scheme_of

import fuzzing

hostile_text = st.one_of(
    st.text(max_size=60),
    st.sampled_from(fuzzing.NASTY_TEXTS),
    st.builds(
        lambda a, b, c: a + b + c,
        st.sampled_from(("", "https://", "http://", "doi:", "10.", "root://", "cms-", "0")),
        st.sampled_from(("", "[::1", "[::1]", "opendata.cern.ch", "doi.org/", "²", "9" * 5000)),
        st.sampled_from(("", "/record/416", "/records/cms-5500", "/api/records/1", "/x?y#z")),
    ),
)

# -- references -------------------------------------------------------------------------


def parse_ref(text: str) -> RecordRef | None:
    try:
        ref = parse_reference(text)
    except InvalidReferenceError:
        return None
    assert ref.kind in ("recid", "doi")
    assert ref.value
    return ref


@given(hostile_text)
@example("0" + "1" * 5000)
@example("https://[::1/record/416")
@example("https://opendata.cern.ch/record/" + "7" * 5000)
def test_any_text_is_a_reference_or_an_invalid_reference_error(text: str) -> None:
    parse_ref(text)


recids = st.one_of(
    st.integers(min_value=0, max_value=10**12).map(str),
    st.builds(
        "{}-{}".format, st.sampled_from(("cms", "ATLAS", "lhcb", "Alice2")), st.integers(0, 10**6)
    ),
)


@given(recids, st.sampled_from(("https://opendata.cern.ch", "http://localhost:5000", "portal.org")))
@example("0005500", "https://opendata.cern.ch")
def test_a_recid_and_its_record_url_are_the_same_reference(recid: str, portal: str) -> None:
    ref = parse_ref(recid)
    assert ref is not None
    assert ref.kind == "recid"
    for form in (f"{portal}/record/{recid}", f"{portal}/api/records/{ref.value}/", str(ref)):
        assert parse_ref(form) == ref


@given(
    st.from_regex(r"10\.[0-9]{4,9}/[A-Za-z0-9._;()/:-]{1,30}", fullmatch=True),
)
def test_a_doi_round_trips_through_its_forms(doi: str) -> None:
    ref = parse_ref(doi)
    assert ref == RecordRef("doi", doi)
    assert parse_ref(str(ref)) == ref
    assert parse_ref(f"https://doi.org/{doi}") == ref


@pytest.mark.parametrize(
    "text",
    [
        "0" + "1" * 5000,  # int() refuses > 4300 digits: "unexpected error" before the fix
        "1" * 4301,
        "https://[::1/record/416",  # urlsplit: "Invalid IPv6 URL" before the fix
        "http://[::1/records/5",
        "[::1/record/5",
        "https://opendata.cern.ch/record/" + "3" * 5000,
        "cms-" + "9" * 5000,  # too long to name a cache file or a folder
    ],
    ids=["5001-digits", "4301-digits", "ipv6", "ipv6-records", "ipv6-no-scheme", "url-5000", "cms"],
)
def test_known_crashing_references_are_invalid_references(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        parse_reference(text)


def test_leading_zeros_of_a_long_recid_are_dropped_without_int() -> None:
    assert parse_reference("0" * 5000 + "5500") == RecordRef("recid", "5500")


# -- checksums --------------------------------------------------------------------------

checksum_values = st.sampled_from(sorted(ALGORITHMS)).flatmap(
    lambda alg: st.tuples(
        st.just(alg), st.text("0123456789abcdefABCDEF", min_size=1, max_size=ALGORITHMS[alg])
    )
)


@given(st.one_of(hostile_text, checksum_values.map(":".join)))
def test_any_text_is_a_checksum_or_a_metadata_error(text: str) -> None:
    try:
        checksum = parse_checksum(text)
    except MetadataError:
        return
    assert len(checksum.value) == ALGORITHMS[checksum.algorithm]
    assert parse_checksum(str(checksum)) == checksum


@given(checksum_values, st.sampled_from(("", " ", "\t")), st.booleans())
def test_spellings_of_one_checksum_parse_equal(
    case: tuple[str, str], pad: str, upper: bool
) -> None:
    alg, value = case
    canonical = parse_checksum(f"{alg}:{value}")
    assert canonical == Checksum(alg, value.lower().zfill(ALGORITHMS[alg]))
    spelled = f"{pad}{alg.upper() if upper else alg}:{pad}{value.upper()}{pad}"
    assert parse_checksum(spelled) == canonical
    assert parse_checksum(str(canonical)) == canonical
    if alg == "adler32":
        assert parse_checksum(f"alder32:{value}") == canonical


# -- URI maps, schemes, option values ---------------------------------------------------


@given(st.lists(hostile_text, max_size=3).map(",".join))
@example("root://[::1=https://h")
@example("root://h=https://[::1")
def test_any_protocol_map_parses_or_is_a_config_error(text: str) -> None:
    try:
        pmap = ProtocolMap.parse(text)
    except ConfigError:
        return
    assert ProtocolMap.parse(str(pmap)) == pmap


@given(hostile_text)
def test_scheme_of_never_raises(text: str) -> None:
    assert scheme_of(text) in ("", scheme_of(text).lower())


@given(st.lists(hostile_text, max_size=3).map(",".join))
@example("1-" + "9" * 5000)
@example("²-³")
def test_any_filter_range_parses_or_is_a_usage_error(text: str) -> None:
    try:
        ranges = parse_ranges(text)
    except UsageError:
        return
    assert all(1 <= a <= b for a, b in ranges)


@pytest.mark.timeout(10)
def test_a_huge_filter_range_does_not_enumerate_it() -> None:
    """--filter-range 1-9223372036854775807 built a set of 2**63 numbers (a hang)."""
    files = [RecordFile(f"root://h//{i}", None, None, f"{i}", f"{i}") for i in range(3)]
    chosen = FileFilter.build((), None, (f"2-{2**63 - 1}",)).apply(files)
    assert [f.path for f in chosen] == ["1", "2"]


@given(st.one_of(hostile_text, st.builds("{}{}".format, st.floats(), st.sampled_from("KMGT"))))
@example("1e999G")
@example("inf")
@example("-5G")
def test_any_max_size_parses_or_is_a_usage_error(text: str) -> None:
    try:
        size = parse_size(text)
    except UsageError:
        return
    assert size >= 0
