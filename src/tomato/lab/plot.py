"""Draw sampled cgroup usage: CPU share over time with the quota as a line, and memory.

matplotlib is an optional dependency (``pip install tomato[lab]``); it is
imported only here, only when a plot is asked for.
"""

from __future__ import annotations

from tomato.errors import Unavailable

from .cgtool import Sample


def plot_usage(samples: list[Sample], out: str, *, quota_cpus: float | None = None,
               memory_limit: int | None = None, title: str = "") -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise Unavailable("plotting needs matplotlib: pip install 'tomato[lab]' "
                          "(or pip install matplotlib)") from err
    t = [s.seconds for s in samples]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    ax1.plot(t, [s.cpus * 100 for s in samples], label="CPU used (% of one CPU)")
    if quota_cpus is not None:
        ax1.axhline(quota_cpus * 100, color="red", linestyle="--",
                    label=f"quota {quota_cpus * 100:.0f} %")
    ax1.set_ylabel("CPU %")
    top = max([s.cpus * 100 for s in samples] + [(quota_cpus or 0) * 100, 10])
    ax1.set_ylim(0, top * 1.2)
    ax1.legend(loc="upper right")
    ax1.grid(True, alpha=0.3)
    ax2.plot(t, [s.memory_bytes / (1 << 20) for s in samples], color="green",
             label="memory (MiB)")
    if memory_limit is not None:
        ax2.axhline(memory_limit / (1 << 20), color="red", linestyle="--",
                    label=f"limit {memory_limit / (1 << 20):.0f} MiB")
    ax2.set_ylim(bottom=0)
    ax2.set_ylabel("MiB")
    ax2.set_xlabel("seconds")
    ax2.legend(loc="upper right")
    ax2.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, format="png")
    plt.close(fig)


__all__ = ["plot_usage"]
