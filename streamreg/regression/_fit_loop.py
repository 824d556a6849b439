"""The epoch loop behind ``MultiSubjectRegressionFitter.fit``: options checked once, then epochs of batches."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from streamreg._validation import check_positive_int
from streamreg.exceptions import OutputExistsError
from streamreg.optim.schedules import format_and_check_learning_rates, learning_rate_at
from streamreg.regression import fit_state
from streamreg.regression.collection import SubjectRegressionCollection
from streamreg.regression.reporting import device_memory, format_output_list

if TYPE_CHECKING:
    from streamreg.regression.fitter import MultiSubjectRegressionFitter

__all__ = ["FitRun", "Recorder", "batch_nll"]

_CP_OPTS = ("copy_data", "copy_props", "subj_specific_preds")


class Recorder(Protocol):
    """What ``fit(recorder=...)`` needs: ``scalar(tag, value)`` per value, ``step()`` once per epoch."""

    def scalar(self, tag: str, value: float) -> None: ...
    def step(self) -> None: ...


def batch_nll(c: SubjectRegressionCollection, inds: np.ndarray, s: int) -> torch.Tensor:
    """``(N_s / n_b) · NLL`` of subject ``s``'s samples ``inds``, on the collection's device."""
    return _EpochBatches(c, [inds], s).nll(0)


def _adam(params: list[torch.Tensor], lr: float, adam_params: dict) -> torch.optim.Adam:
    """Adam with ``adam_params``; the fused kernel unless they choose an implementation (one call per step)."""
    opts = dict(adam_params)
    chosen = {"fused", "foreach", "differentiable", "capturable"} & set(opts)
    if not chosen and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params):
        opts["fused"] = True
    return torch.optim.Adam(params, lr=lr, **opts)


class _EpochBatches:
    """One subject's batches of one epoch: ``nll(b)`` is ``(N_s / n_b) · NLL`` of batch ``b``.

    In-memory data on the collection's device take the rows of each batch by one
    ``index_select`` per group from sample rows gathered once per epoch; other data are
    read batch by batch (HDF5 rows coalesced) and checked for NaN.
    """

    def __init__(self, c: SubjectRegressionCollection, inds: Sequence[np.ndarray], s: int) -> None:
        self.c, self.inds, self.s = c, inds, s
        data = c.data
        self.fast = data.in_memory and all(d.device == c.device for d in data.data)
        if self.fast:
            perm = torch.from_numpy(np.concatenate(inds).astype(np.int64, copy=False)).to(data.i_x.device)
            self.i_x, self.i_y = data.i_x[perm], data.i_y[perm]
            self.bounds = np.cumsum([0] + [len(i) for i in inds]).tolist()

    def _rows(self, b: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        c, data = self.c, self.c.data
        if self.fast:
            lo, hi = self.bounds[b], self.bounds[b + 1]
            i_x, i_y = self.i_x[lo:hi], self.i_y[lo:hi]
            return ([data.data[g].index_select(0, i_x.to(data.data[g].device)) for g in c.input_grps],
                    [data.data[h].index_select(0, i_y.to(data.data[h].device)) for h in c.output_grps])
        batch = data.efficient_get_item(self.inds[b]) if data.in_memory else data[self.inds[b]]
        x = [batch.rows(g, batch.i_x).to(c.device) for g in c.input_grps]
        y = [batch.rows(h, batch.i_y).to(c.device) for h in c.output_grps]
        if not data.in_memory:
            for name, ts in (("input", x), ("output", y)):
                for k, t in enumerate(ts):
                    if bool(torch.isnan(t).any()):
                        msg = f"subject {self.s}: NaN in {name} group {k} of the data read for this batch."
                        raise ValueError(msg)
        return x, y

    def nll(self, b: int) -> torch.Tensor:
        """``(N_s / n_b) · NLL_s`` of batch ``b`` (a 0-d tensor with grad)."""
        x, y = self._rows(b)
        p, u = self.c.modes()
        mn = self.c.s_mdl.cond_forward(x, p=p, u=u)
        return (len(self.c.data) / len(self.inds[b])) * self.c.s_mdl.neg_ll(y, mn)


class FitRun:
    """One call of ``fit``: validated options, the optimizer, the log, and the loop over epochs."""

    def __init__(
        self,
        fitter: MultiSubjectRegressionFitter,
        n_epochs: int,
        n_batches: int,
        learning_rates: Any,
        adam_params: dict | None,
        s_inds: Sequence[int] | None,
        update_int: int,
        print_mdl_nlls: bool,
        print_memory_usage: bool,
        cp_epochs: Sequence[int] | None,
        cp_opts: dict | None,
        checkpoint_dir: str | os.PathLike | None,
        resume_from: str | os.PathLike | None,
        recorder: Recorder | None,
        reset_adam_on_rate_change: bool,
    ) -> None:
        if not fitter.distributed:
            msg = "self.distribute() must be called before fitting."
            raise RuntimeError(msg)
        self.fitter, self.s_inds = fitter, fitter._s_inds(s_inds)
        self.n_epochs, self.n_batches = (
            check_positive_int(n_epochs, "n_epochs"),
            check_positive_int(n_batches, "n_batches"),
        )
        self.update_int = check_positive_int(update_int, "update_int")
        self.its, self.rates = format_and_check_learning_rates(learning_rates)
        self.adam_params = dict(adam_params or {})
        if "lr" in self.adam_params:
            msg = f"adam_params must not hold 'lr' (got lr={self.adam_params['lr']!r}); give rates with learning_rates."
            raise ValueError(msg)
        for s in self.s_inds:
            n = len(fitter.s_collections[s].data)
            if n < self.n_batches:
                msg = f"Subject {s} has only {n} samples, while n_batches={self.n_batches} batches were requested."
                raise ValueError(msg)
        self.cp_epochs = None if cp_epochs is None else [int(e) for e in cp_epochs]
        self.cp_opts = dict(cp_opts or {})
        unknown = sorted(set(self.cp_opts) - set(_CP_OPTS))
        if unknown:
            msg = f"cp_opts has unknown keys {unknown}; allowed: {list(_CP_OPTS)}."
            raise ValueError(msg)
        self.print_mdl_nlls, self.print_memory_usage = print_mdl_nlls, print_memory_usage
        self.checkpoint_dir = None if checkpoint_dir is None else os.fspath(checkpoint_dir)
        self.resume_from, self.recorder, self.reset_adam = resume_from, recorder, reset_adam_on_rate_change
        self.config = {"n_subjects": len(fitter.s_collections), "s_inds": self.s_inds, "n_batches": self.n_batches}

    def run(self) -> list:
        """Fit and return ``[log, check_points]``."""
        params = self.fitter.trainable_parameters(self.s_inds)
        opt = _adam(params, float(self.rates[0, 0]), self.adam_params)
        e_total, n_s = self.n_epochs, len(self.s_inds)
        self.log = {"elapsed_time": np.zeros(e_total), "mdl_nll": np.zeros((e_total, n_s)), "obj": np.zeros(e_total)}
        start, t_offset = self._resume(params, opt)
        self._check_checkpoint_files(start)
        check_points = None if self.cp_epochs is None else [None] * len(self.cp_epochs)
        t0 = time.perf_counter()
        for e in tqdm(range(start, e_total), initial=start, total=e_total, desc="epochs"):
            lr = float(learning_rate_at(self.its, self.rates, e)[0])
            opt = self._apply_rate(opt, params, lr)
            nlls = self._epoch(opt)
            self.log["mdl_nll"][e] = nlls
            self.log["obj"][e] = float(nlls.sum())
            self.log["elapsed_time"][e] = t_offset + time.perf_counter() - t0
            if self.cp_epochs is not None and e in self.cp_epochs:
                tqdm.write(f"Creating checkpoint after epoch {e}.")
                check_points[self.cp_epochs.index(e)] = self.fitter.create_check_point(**self.cp_opts)
                if self.checkpoint_dir is not None:
                    self._write_file(e, params, opt)
            self._report(e, lr)
        return [self.log, check_points]

    def _resume(self, params: list[torch.Tensor], opt: torch.optim.Optimizer) -> tuple[int, float]:
        """Load ``resume_from`` into the fitter and optimizer; return (first epoch to run, elapsed time so far)."""
        if self.resume_from is None:
            return 0, 0.0
        record = fit_state.load_training_state(self.resume_from, self.config, params)
        fit_state.restore(record, self._models(), self.fitter.predictors(), params, opt)
        done = int(record["epochs_done"])
        if done > self.n_epochs:
            msg = f"resume_from holds {done} epochs, more than n_epochs={self.n_epochs}."
            raise ValueError(msg)
        for k, v in record["log"].items():
            self.log[k][:done] = v.numpy()
        return done, float(self.log["elapsed_time"][done - 1]) if done else 0.0

    def _models(self) -> list[torch.nn.Module]:
        return [c.s_mdl for c in self.fitter.s_collections]

    def _check_checkpoint_files(self, start: int) -> None:
        if self.checkpoint_dir is None or self.cp_epochs is None:
            return
        os.makedirs(self.checkpoint_dir, exist_ok=True)
        names = [fit_state.checkpoint_name(e) for e in self.cp_epochs if start <= e < self.n_epochs]
        there = [n for n in names if os.path.exists(os.path.join(self.checkpoint_dir, n))]
        if there:
            msg = f"checkpoint_dir={self.checkpoint_dir!r} already holds {there}; give an empty directory."
            raise OutputExistsError(msg)

    def _write_file(self, e: int, params: list[torch.Tensor], opt: torch.optim.Optimizer) -> None:
        record = fit_state.training_state(
            self._models(), self.fitter.predictors(), params, opt, e + 1, self.config, self.log
        )
        fit_state.save_atomic(record, os.path.join(self.checkpoint_dir, fit_state.checkpoint_name(e)))

    def _apply_rate(self, opt: torch.optim.Optimizer, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
        """Set the scheduled rate, keeping Adam's moments unless ``reset_adam_on_rate_change``."""
        if all(g["lr"] == lr for g in opt.param_groups):
            return opt
        if self.reset_adam:
            return _adam(params, lr, self.adam_params)
        for g in opt.param_groups:
            g["lr"] = lr
        return opt

    def _epoch(self, opt: torch.optim.Optimizer) -> np.ndarray:
        """One pass over every sample; return each subject's mean batch value of (N_s/n_b)·NLL_s."""
        colls = self.fitter.s_collections
        inds = self.fitter.generate_batch_smp_inds(self.n_batches, self.s_inds)
        batches = [_EpochBatches(colls[s], inds[i], s) for i, s in enumerate(self.s_inds)]
        psis = [psi for s in self.s_inds for psi in colls[s].s_mdl.psi if psi is not None]
        sums: list[torch.Tensor | float] = [0.0] * len(self.s_inds)
        for b in range(self.n_batches):
            opt.zero_grad()
            nlls = [sb.nll(b) for sb in batches]
            torch.autograd.backward(nlls)  # one backward pass over all subjects (they may sit on different devices)
            for i, nll in enumerate(nlls):
                sums[i] = sums[i] + nll.detach()
            opt.step()
            with torch.no_grad():
                for psi in psis:
                    psi.clamp_(min=self.fitter.min_var)
        return np.array([float(v) for v in sums]) / self.n_batches

    def _report(self, e: int, lr: float) -> None:
        """Recorder scalars every epoch; the seed's status lines every ``update_int`` epochs."""
        nlls, obj, elapsed = self.log["mdl_nll"][e], float(self.log["obj"][e]), float(self.log["elapsed_time"][e])
        if self.recorder is not None:
            self.recorder.scalar("obj", obj)
            self.recorder.scalar("lr", lr)
            self.recorder.scalar("elapsed_time", elapsed)
            for s, v in zip(self.s_inds, nlls, strict=True):
                self.recorder.scalar(f"mdl_nll/s{s}", float(v))
            self.recorder.step()
        if e % self.update_int != 0:
            return
        lines = ["*" * 63, f"Epoch {e} complete.  Obj: {obj:.2e}, LR: {lr}"]
        if self.print_mdl_nlls:
            lines.append(format_output_list("Model NLLs: ", "s_", nlls, self.s_inds))
        if self.print_memory_usage:
            devs = [d for d in self.fitter.get_used_devices() if d is not None]
            for label, peak in (("Device memory allocated: ", False), ("Device max memory allocated: ", True)):
                lines.append(format_output_list(label, "d_", device_memory(devs, peak), range(len(devs))))
        lines.append(f"Elapsed time: {elapsed}")
        tqdm.write("\n".join(lines))
