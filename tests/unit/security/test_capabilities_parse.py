"""Capability names, parsing and the OCI capabilities object (pure logic)."""

from __future__ import annotations

import pytest

from tomato._sys import caps
from tomato.errors import InvalidArgument


def test_table_is_complete_and_numbered_like_the_kernel() -> None:
    assert len(caps.CAP_NAMES) == 41 == len(set(caps.CAP_NAMES))
    assert caps.CAP_NUMBERS["CAP_CHOWN"] == 0
    assert caps.CAP_NUMBERS["CAP_NET_RAW"] == 13
    assert caps.CAP_NUMBERS["CAP_SYS_ADMIN"] == 21
    assert caps.CAP_NUMBERS["CAP_SETFCAP"] == 31
    assert caps.CAP_NUMBERS["CAP_AUDIT_READ"] == 37
    assert caps.CAP_NUMBERS["CAP_CHECKPOINT_RESTORE"] == 40


def test_parse_names_any_case_prefix_optional() -> None:
    got = caps.parse(["CAP_NET_RAW", "cap_kill", "sys_admin"], kernel_last_cap=40)
    assert got == frozenset({13, 5, 21})


def test_parse_empty_and_none() -> None:
    assert caps.parse(None) == frozenset()
    assert caps.parse([]) == frozenset()


def test_unknown_capability_is_an_error_naming_it() -> None:
    with pytest.raises(InvalidArgument, match="CAP_FLY"):
        caps.parse(["CAP_KILL", "CAP_FLY"], kernel_last_cap=40)


def test_a_string_is_not_a_list_of_names() -> None:
    with pytest.raises(InvalidArgument, match="list"):
        caps.parse("CAP_KILL", kernel_last_cap=40)  # type: ignore[arg-type]


def test_non_string_name_is_an_error() -> None:
    with pytest.raises(InvalidArgument, match="string"):
        caps.parse([13], kernel_last_cap=40)  # type: ignore[list-item]


def test_names_beyond_the_kernels_last_cap_are_ignored_with_a_warning() -> None:
    warnings: list[str] = []
    got = caps.parse(["CAP_KILL", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"], kernel_last_cap=37,
                     warnings=warnings)
    assert got == frozenset({5})
    assert len(warnings) == 2
    assert "CAP_BPF" in warnings[0] and "CAP_CHECKPOINT_RESTORE" in warnings[1]


def test_capsets_from_oci() -> None:
    sets = caps.CapSets.from_oci({"bounding": ["CAP_KILL", "CAP_NET_RAW"],
                                  "effective": ["CAP_KILL"], "ambient": []},
                                 kernel_last_cap=40)
    assert sets.bounding == frozenset({5, 13})
    assert sets.effective == frozenset({5})
    assert sets.permitted == sets.inheritable == sets.ambient == frozenset()
    assert sets.to_oci()["bounding"] == ["CAP_KILL", "CAP_NET_RAW"]


def test_capsets_from_oci_none_is_empty() -> None:
    assert caps.CapSets.from_oci(None) == caps.CapSets()


def test_capsets_from_oci_rejects_unknown_set_and_names() -> None:
    with pytest.raises(InvalidArgument, match="sideways"):
        caps.CapSets.from_oci({"sideways": ["CAP_KILL"]}, kernel_last_cap=40)
    with pytest.raises(InvalidArgument, match="CAP_NOPE"):
        caps.CapSets.from_oci({"permitted": ["CAP_NOPE"]}, kernel_last_cap=40)
    with pytest.raises(InvalidArgument, match="object"):
        caps.CapSets.from_oci(["CAP_KILL"], kernel_last_cap=40)  # type: ignore[arg-type]


def test_capsets_from_oci_passes_warnings_through() -> None:
    warnings: list[str] = []
    sets = caps.CapSets.from_oci({"bounding": ["CAP_PERFMON"]}, warnings, kernel_last_cap=37)
    assert sets.bounding == frozenset() and "CAP_PERFMON" in warnings[0]


def test_masks_round_trip() -> None:
    numbers = frozenset({0, 13, 21, 31, 32, 40})
    mask = caps.to_mask(numbers)
    assert mask == (1 << 0) | (1 << 13) | (1 << 21) | (1 << 31) | (1 << 32) | (1 << 40)
    assert caps.from_mask(mask) == numbers


def test_names_and_cap_name() -> None:
    assert caps.names({21, 5}) == ["CAP_KILL", "CAP_SYS_ADMIN"]
    assert caps.cap_name(63) == "CAP_63"


def test_last_cap_reads_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "cap_last_cap"
    f.write_text("38\n")
    assert caps.last_cap(str(f)) == 38
    assert caps.last_cap(str(tmp_path / "missing")) == caps.CAP_NUMBERS["CAP_BLOCK_SUSPEND"]
