"""Value conversions between cgroup v1 and v2 knobs.

The formulas are runc's (libcontainer/cgroups/utils.go:
ConvertCPUSharesToCgroupV2Value, ConvertBlkIOToIOWeightValue,
ConvertMemorySwapToCgroupV2Value), so a container gets the same kernel
values under tomato as under runc.  (crun >= 1.13 maps shares to weight on a
logarithmic curve instead; we follow runc's linear mapping, which crun used
before and which is what kubelet and the OCI docs assume.)
"""

from __future__ import annotations


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] → cpu.weight [1, 10000]; 0 stays 0 (unset)."""
    if shares == 0:
        return 0
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def weight_to_shares(weight: int) -> int:
    """The inverse of :func:`shares_to_weight` (cpu.weight → cpu.shares)."""
    if weight == 0:
        return 0
    weight = min(max(weight, 1), 10000)
    return 2 + ((weight - 1) * 262142) // 9999


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] → io.weight [1, 10000]; 0 stays 0 (unset)."""
    if weight == 0:
        return 0
    return 1 + ((weight - 10) * 9999) // 990


def io_weight_to_blkio_weight(weight: int) -> int:
    if weight == 0:
        return 0
    return 10 + ((weight - 1) * 990) // 9999


def swap_to_v2(swap: int | None, limit: int | None) -> int | None:
    """OCI memory.swap (memory+swap, the v1 memsw meaning) → v2 memory.swap.max
    (swap alone).  -1 means "max"; returns None when nothing is to be written.
    Raises ValueError when swap < limit, which the v1 kernel also refuses."""
    if swap is None:
        return None
    if swap == -1:
        return -1
    if swap == 0:
        return None  # runc: 0 is "unset"
    if limit is None or limit == -1:
        raise ValueError("memory.swap needs memory.limit to be set on cgroup v2")
    if swap < limit:
        raise ValueError("memory.swap must be at least memory.limit")
    return swap - limit
