"""equifind.unitref: "layer:unit" references read and written."""

from __future__ import annotations

import pytest

from equifind.unitref import UnitRef, format_unit_ref, one_layer, parse_unit_ref, parse_unit_refs


@pytest.mark.parametrize("text, layer, units", [
    ("mixed3b:12", "mixed3b", (12,)), ("mixed3b:12,34", "mixed3b", (12, 34)), (" conv2d0 : 3 , 7 ", "conv2d0", (3, 7)),
    ("features/3:0", "features/3", (0,)), ("a:b:5", "a:b", (5,)),  # the last ':' separates the units
])  # fmt: skip
def test_parse(text, layer, units):
    assert parse_unit_ref(text) == UnitRef(layer, units)


@pytest.mark.parametrize("text, says", [
    ("mixed3b", "bad unit reference 'mixed3b': expected LAYER:UNIT"), (":12", "bad unit reference ':12': expected"),
    ("mixed3b:", "'mixed3b:': no units; expected LAYER:UNIT"), ("m:1,,2", "an empty unit between commas"),
    ("m:x", "'x' is not a unit number"), ("m:-1", "'-1' is not a unit number"), ("m:1.5", "'1.5' is not a unit number"),
])  # fmt: skip
def test_bad_references_name_the_text_and_the_form(text, says):
    with pytest.raises(ValueError, match="LAYER:UNIT") as err:
        parse_unit_ref(text)
    assert says in str(err.value) and "e.g. mixed3b:12,34" in str(err.value)


def test_several_references_and_one_layer():
    refs = parse_unit_refs(["mixed3b:1,2", "mixed3b:7"])
    assert one_layer(refs) == UnitRef("mixed3b", (1, 2, 7))
    assert parse_unit_refs("a:1") == [UnitRef("a", (1,))]
    with pytest.raises(ValueError, match=r"units of one layer are needed, got 2 layers \['a', 'b'\]: a:1, b:2,3"):
        one_layer(parse_unit_refs(["a:1", "b:2,3"]))
    with pytest.raises(ValueError, match="no unit references given"):
        parse_unit_refs([])


def test_format_is_what_parse_reads():
    assert format_unit_ref("mixed3b", [12, 34]) == "mixed3b:12,34" == str(UnitRef("mixed3b", (12, 34)))
    assert format_unit_ref("m", range(10), limit=3) == "m:0,1,2,…" and format_unit_ref("m", [1, 2], limit=2) == "m:1,2"
    assert parse_unit_ref(format_unit_ref("features/3", [5, 6])) == UnitRef("features/3", (5, 6))
    with pytest.raises(ValueError, match="limit must be None or an int ≥ 1, got 0"):
        format_unit_ref("m", [1], limit=0)
