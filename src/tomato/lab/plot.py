"""Draw sampled cgroup usage: CPU share over time with the quota as a line, and memory.

matplotlib is an optional dependency (``pip install tomato[lab]``); it is
imported only here, only when a plot is asked for.  The memory panel is drawn
only for a group that has a memory cgroup (a flat line at 0 would say "uses no
memory" when it means "not measured"), and legends sit above their panel,
never over the data.
"""

from __future__ import annotations

from typing import Any

from tomato.errors import Unavailable

from .cgtool import Sample


def pyplot() -> Any:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise Unavailable("drawing needs matplotlib: pip install 'tomato[lab]' "
                          "(or pip install matplotlib)") from err
    return plt


def plot_usage(samples: list[Sample], out: str, *, quota_cpus: float | None = None,
               memory_limit: int | None = None, has_memory: bool = True,
               title: str = "") -> dict[str, Any]:
    """Write the PNG; returns what it drew (the series and lines), for tests."""
    plt = pyplot()
    t = [s.seconds for s in samples]
    cpu = [s.cpus * 100 for s in samples]
    memory = [s.memory_bytes / (1 << 20) for s in samples] if has_memory else None
    fig, axes = plt.subplots(2 if has_memory else 1, 1, figsize=(8, 6.5 if has_memory else 4),
                             sharex=True, squeeze=False)
    ax1 = axes[0][0]
    ax1.plot(t, cpu, marker="o", label="CPU used in each sample (% of one CPU)")
    if quota_cpus is not None:
        ax1.axhline(quota_cpus * 100, color="red", linestyle="--",
                    label=f"quota: {quota_cpus * 100:.0f} % on average per period")
    ax1.set_ylabel("CPU %")
    ax1.set_ylim(0, max(cpu + [(quota_cpus or 0) * 100, 10]) * 1.2)
    _legend_above(ax1)
    ax1.grid(True, alpha=0.3)
    if memory is not None:
        ax2 = axes[1][0]
        ax2.plot(t, memory, color="green", marker="o", label="memory used (MiB)")
        if memory_limit is not None:
            ax2.axhline(memory_limit / (1 << 20), color="red", linestyle="--",
                        label=f"limit {memory_limit / (1 << 20):.0f} MiB")
        ax2.set_ylim(0, max(memory + [memory_limit / (1 << 20) if memory_limit else 0, 1])
                     * 1.2)
        ax2.set_ylabel("MiB")
        _legend_above(ax2)
        ax2.grid(True, alpha=0.3)
    axes[-1][0].set_xlabel("seconds")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, format="png")
    plt.close(fig)
    return {"seconds": t, "cpu_percent": cpu, "memory_mib": memory,
            "quota_percent": None if quota_cpus is None else quota_cpus * 100,
            "memory_limit_mib": None if memory_limit is None else memory_limit / (1 << 20),
            "panels": 2 if has_memory else 1}


def _legend_above(ax: Any) -> None:
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, frameon=False,
              fontsize="small", borderaxespad=0.2)


__all__ = ["plot_usage", "pyplot"]
