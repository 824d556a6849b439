"""Status lines and log plots of the multi-subject fitter (``format_output_list``, ``plot_log``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

__all__ = ["device_memory", "format_output_list", "plot_log"]


def format_output_list(base_str: str, it_str: str, vls: Sequence[float], inds: Sequence[int]) -> str:
    """``base_str`` + ``' '`` + ``"{it_str}{ind}: {value:.2e}"`` entries joined by ``", "``.

    Examples
    --------
    >>> format_output_list('Model NLLs: ', 's_', [1234.5, .001], [2, 0])
    'Model NLLs:  s_2: 1.23e+03, s_0: 1.00e-03'
    """
    return base_str + " " + ", ".join(f"{it_str}{i}: {float(v):.2e}" for v, i in zip(vls, inds, strict=True))


def device_memory(devices: Sequence[torch.device], maximum: bool) -> list[float]:
    """Bytes allocated (or the peak) per CUDA device; ``nan`` for other devices."""
    out = []
    for d in devices:
        if d.type == "cuda":
            out.append(float(torch.cuda.max_memory_allocated(d) if maximum else torch.cuda.memory_allocated(d)))
        else:
            out.append(float("nan"))
    return out


def plot_log(log: dict[str, np.ndarray]) -> Figure:
    """A Figure of ``obj`` and each subject's ``mdl_nll`` against ``elapsed_time`` (no pyplot; save with savefig).

    Examples
    --------
    >>> fig = plot_log({"elapsed_time": np.arange(3.0), "obj": np.ones(3), "mdl_nll": np.ones((3, 2))})
    >>> [ax.get_title() for ax in fig.axes]
    ['Objective', 'Model Negative Log Likelihoods']
    """
    fig = Figure(figsize=(8, 6), layout="constrained")
    ax_obj, ax_nll = fig.subplots(2, 1)
    t = np.asarray(log["elapsed_time"])
    ax_obj.plot(t, np.asarray(log["obj"]))
    ax_obj.set_title("Objective")
    ax_obj.set_xlabel("elapsed time (s)")
    nll = np.asarray(log["mdl_nll"])
    for s in range(nll.shape[1]):
        ax_nll.plot(t, nll[:, s], label=f"subject {s}")
    ax_nll.set_title("Model Negative Log Likelihoods")
    ax_nll.set_xlabel("elapsed time (s)")
    ax_nll.legend()
    return fig
