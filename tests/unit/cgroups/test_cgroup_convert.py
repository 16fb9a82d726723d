"""v1 ↔ v2 value conversions (runc's formulas)."""

from __future__ import annotations

import pytest

from tomato.cgroups import convert


@pytest.mark.parametrize("shares, weight", [(0, 0), (2, 1), (1024, 39), (262144, 10000),
                                            (1, 1), (10**9, 10000)])
def test_shares_to_weight(shares, weight):
    assert convert.shares_to_weight(shares) == weight


def test_weight_to_shares_round_trips_closely():
    for shares in (2, 512, 1024, 4096, 262144):
        back = convert.weight_to_shares(convert.shares_to_weight(shares))
        assert abs(back - shares) <= 27  # one weight step is ~26 shares


@pytest.mark.parametrize("blkio, io", [(0, 0), (10, 1), (500, 4950), (1000, 10000)])
def test_blkio_weight_to_io_weight(blkio, io):
    assert convert.blkio_weight_to_io_weight(blkio) == io
    if blkio:
        assert convert.io_weight_to_blkio_weight(io) == blkio


def test_swap_to_v2():
    assert convert.swap_to_v2(None, 100) is None
    assert convert.swap_to_v2(-1, 100) == -1
    assert convert.swap_to_v2(300, 100) == 200
    assert convert.swap_to_v2(100, 100) == 0
    with pytest.raises(ValueError):
        convert.swap_to_v2(50, 100)
    with pytest.raises(ValueError):
        convert.swap_to_v2(50, None)
