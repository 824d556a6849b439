"""``MultiSubjectRegressionFitter``: Adam over mini-batches of every subject, objective Σ_s (N_s/n_b)·NLL_s."""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from streamreg._validation import check_positive_float, check_positive_int
from streamreg.regression import reporting
from streamreg.regression._fit_loop import FitRun, Recorder
from streamreg.regression.collection import SubjectRegressionCollection, unique_by_identity

__all__ = ["MultiSubjectRegressionFitter"]


class MultiSubjectRegressionFitter:
    """Fit several subjects' latent regression models, with mode predictors shared across subjects.

    Parameters
    ----------
    s_collections : sequence of SubjectRegressionCollection
        One per subject.
    min_var : float
        Floor applied to every trainable ψ after each optimizer step.
    """

    def __init__(self, s_collections: Sequence[SubjectRegressionCollection], min_var: float = 1e-3) -> None:
        self.s_collections = list(s_collections)
        self.min_var = check_positive_float(min_var, "min_var")
        self.distributed = False

    def _s_inds(self, s_inds: Sequence[int] | None) -> list[int]:
        n = len(self.s_collections)
        if s_inds is None:
            return list(range(n))
        inds = [int(s) for s in s_inds]
        bad = [s for s in inds if not 0 <= s < n]
        if bad or len(set(inds)) != len(inds) or not inds:
            msg = f"s_inds must be distinct subject indices in range({n}); got {list(s_inds)}."
            raise ValueError(msg)
        return inds

    def distribute(
        self,
        devices: Sequence[torch.device | int | str],
        s_inds: Sequence[int] | None = None,
        distribute_data: bool = False,
    ) -> None:
        """Put collection ``s_inds[i]`` on ``devices[i % len(devices)]``; move data too if ``distribute_data``."""
        if not devices:
            msg = "devices must list at least one device; got an empty sequence."
            raise ValueError(msg)
        for i, s in enumerate(self._s_inds(s_inds)):
            self.s_collections[s].to(devices[i % len(devices)], distribute_data=distribute_data)
        self.distributed = True

    def predictors(self, s_inds: Sequence[int] | None = None) -> list[nn.Module]:
        """The predictor modules of subjects ``s_inds``, in order of first use, each once."""
        return unique_by_identity([m for s in self._s_inds(s_inds) for m in self.s_collections[s].predictors()])

    def trainable_parameters(self, s_inds: Sequence[int] | None = None) -> list[nn.Parameter]:
        """Parameters of subjects ``s_inds`` (all if None) and their predictors, in a fixed order, each once."""
        return unique_by_identity(
            [p for s in self._s_inds(s_inds) for p in self.s_collections[s].trainable_parameters()]
        )

    def generate_batch_smp_inds(self, n_batches: int, s_inds: Sequence[int] | None = None) -> list[list[np.ndarray]]:
        """``out[i][j]``: sample indices of batch j of subject ``s_inds[i]``; all samples, sizes within one.

        Draws one ``np.random.permutation`` per subject (numpy's global RNG) and splits it into ``n_batches``.
        """
        n_batches = check_positive_int(n_batches, "n_batches")
        out = []
        for s in self._s_inds(s_inds):
            n = len(self.s_collections[s].data)
            if n < n_batches:
                msg = f"Subject {s} has only {n} samples, while n_batches={n_batches} batches were requested."
                raise ValueError(msg)
            perm = np.random.permutation(n)  # noqa: NPY002 - global RNG on purpose: np.random.seed controls it, as in janelia
            out.append(np.array_split(perm, n_batches))
        return out

    def get_used_devices(self) -> list[torch.device | None]:
        """Devices of the collections, in order of first appearance (``None`` before :meth:`distribute`)."""
        return unique_by_identity_eq([c.device for c in self.s_collections])

    def create_check_point(
        self, copy_data: bool = False, copy_props: bool = False, subj_specific_preds: bool = False
    ) -> dict[str, list[SubjectRegressionCollection]]:
        """Copies of the collections on CPU, without data (unless ``copy_data``) or properties (unless ``copy_props``).

        With ``subj_specific_preds=False`` one copy is made of everything, so predictors shared by subjects stay
        shared in the copy; with True each subject's collection is copied on its own, with its own predictors.
        The data are never copied unless asked (they are left out before copying).
        """

        def skip(c: SubjectRegressionCollection) -> dict[int, Any]:
            memo: dict[int, Any] = {} if copy_data else {id(c.data): None}
            if not copy_props:
                memo[id(c.props)] = None
            return memo

        if subj_specific_preds:
            copies = [copy.deepcopy(c, skip(c)) for c in self.s_collections]
        else:
            memo: dict[int, Any] = {}
            for c in self.s_collections:
                memo.update(skip(c))
            copies = copy.deepcopy(self.s_collections, memo)
        for c in copies:
            c.s_mdl.to("cpu")
            for m in c.predictors():
                m.to("cpu")
            c.p_preds = [t.detach().cpu() if isinstance(t, torch.Tensor) else t for t in c.p_preds]
            c.u_preds = [t.detach().cpu() if isinstance(t, torch.Tensor) else t for t in c.u_preds]
            c.device = None
        return {"s_collections": copies}

    def fit(
        self,
        n_epochs: int = 10,
        n_batches: int = 10,
        learning_rates: Any = 0.01,
        adam_params: dict | None = None,
        s_inds: Sequence[int] | None = None,
        update_int: int = 1,
        print_mdl_nlls: bool = True,
        print_memory_usage: bool = True,
        cp_epochs: Sequence[int] | None = None,
        cp_opts: dict | None = None,
        *,
        checkpoint_dir: str | os.PathLike | None = None,
        resume_from: str | os.PathLike | None = None,
        recorder: Recorder | None = None,
        reset_adam_on_rate_change: bool = False,
    ) -> list:
        """Fit by Adam, one step per batch on Σ_s (N_s/n_b)·NLL_s, then the ψ floor; every sample each epoch.

        Parameters
        ----------
        n_epochs : int
            Epochs in all (with ``resume_from``, the epochs in the file count).
        n_batches : int
            Batches per epoch; each subject's samples are split into this many batches (sizes within one).
        learning_rates : float or list of (epoch, lr)
            A rate, or a schedule in epochs (``streamreg.optim.format_and_check_learning_rates``; column 0 used).
        adam_params : dict or None
            Other ``torch.optim.Adam`` arguments; ``lr`` is refused (use ``learning_rates``).
        s_inds : sequence of int or None
            Subjects to fit (all if None).
        update_int : int
            Print the status lines every ``update_int`` epochs.
        print_mdl_nlls, print_memory_usage : bool
            Include the per-subject NLLs and the device memory in the status lines.
        cp_epochs : sequence of int or None
            0-based epochs after which to make a checkpoint (:meth:`create_check_point` with ``cp_opts``).
        cp_opts : dict or None
            Keyword arguments of :meth:`create_check_point`.
        checkpoint_dir : path or None
            Also write the training state after each of ``cp_epochs`` to ``checkpoint_dir/epoch_{e:06d}.pt``
            (atomically; existing files are not overwritten).
        resume_from : path or None
            A file written with ``checkpoint_dir`` by a fitter built the same way: continue from it to ``n_epochs``.
        recorder : object or None
            Gets ``scalar(tag, value)`` for ``obj``, ``lr``, ``elapsed_time`` and ``mdl_nll/s{s}``, then ``step()``,
            once per epoch.
        reset_adam_on_rate_change : bool
            Start Adam afresh when the scheduled rate changes (janelia's behaviour); by default the moments are kept.

        Returns
        -------
        [log, check_points]
            ``log`` has ``elapsed_time`` ``(E,)``, ``obj`` ``(E,)`` and ``mdl_nll`` ``(E, S)``, epoch means over
            all batches; ``check_points[i]`` is made after epoch ``cp_epochs[i]`` (None if not reached), or
            ``check_points`` is None without ``cp_epochs``.
        """
        return FitRun(
            self,
            n_epochs,
            n_batches,
            learning_rates,
            adam_params,
            s_inds,
            update_int,
            print_mdl_nlls,
            print_memory_usage,
            cp_epochs,
            cp_opts,
            checkpoint_dir,
            resume_from,
            recorder,
            reset_adam_on_rate_change,
        ).run()

    @classmethod
    def plot_log(cls, log: dict[str, np.ndarray]) -> Figure:
        """A matplotlib Figure of the objective and per-subject NLLs against elapsed time (see ``reporting``)."""
        return reporting.plot_log(log)


def unique_by_identity_eq(items: list[Any]) -> list[Any]:
    """``items`` in order of first appearance, comparing with ``==`` (devices)."""
    out: list[Any] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out
