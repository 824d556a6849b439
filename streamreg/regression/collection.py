"""``SubjectRegressionCollection``: one subject's model, data, variable properties and mode predictors."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from streamreg.regression.data import TimeSeriesBatch
from streamreg.regression.model import LatentRegModel

__all__ = ["SubjectRegressionCollection"]

Predictor = nn.Module | torch.Tensor


def unique_by_identity(items: Sequence[object]) -> list:
    """``items`` in order, keeping the first of objects that are the same object (not merely equal)."""
    seen: set[int] = set()
    out = []
    for item in items:
        if id(item) not in seen:
            seen.add(id(item))
            out.append(item)
    return out


class SubjectRegressionCollection:
    """A subject's likelihood model with its data, properties and the predictors of its modes.

    Parameters
    ----------
    s_mdl : LatentRegModel
        The subject's model.
    data : TimeSeriesBatch
        The subject's samples; ``data.data[input_grps[g]]`` and ``data.data[output_grps[h]]`` hold the groups.
    input_grps, output_grps : sequence of int
        Index into ``data.data`` of each input group g and output group h.
    props : sequence of Tensor
        Per-variable properties, ``(n_vars, n_props)`` each (neuron positions, say).
    input_props, output_props : sequence of int or None
        Index into ``props`` for each group's properties; ``None`` where the group's modes are a fixed tensor.
    p_preds, u_preds : sequence of nn.Module or Tensor
        Per group: a predictor module applied to its properties, giving ``(d_in[g], d_proj[g])`` (resp.
        ``(d_out[h], d_trans[h])``), or a tensor of that shape used as is (trained if it is a Parameter, such as the
        model's own ``s_mdl.p[g]``). A module shared by subjects ties their modes together.
    """

    def __init__(
        self,
        s_mdl: LatentRegModel,
        data: TimeSeriesBatch,
        input_grps: Sequence[int],
        output_grps: Sequence[int],
        props: Sequence[torch.Tensor],
        input_props: Sequence[int | None],
        output_props: Sequence[int | None],
        p_preds: Sequence[Predictor],
        u_preds: Sequence[Predictor],
    ) -> None:
        self.s_mdl, self.data = s_mdl, data
        self.input_grps, self.output_grps = list(input_grps), list(output_grps)
        self.props = list(props)
        self.input_props, self.output_props = list(input_props), list(output_props)
        self.p_preds, self.u_preds = list(p_preds), list(u_preds)
        self.device: torch.device | None = None
        self._check("input", self.input_grps, self.input_props, self.p_preds, s_mdl.d_in, s_mdl.d_proj)
        self._check("output", self.output_grps, self.output_props, self.u_preds, s_mdl.d_out, s_mdl.d_trans)
        for i, d in enumerate(data.data):
            if isinstance(d, torch.Tensor) and bool(torch.isnan(d).any()):
                msg = (
                    f"data.data[{i}] holds NaN at rows {torch.isnan(d).any(dim=1).nonzero()[:5, 0].tolist()} (first 5)."
                )
                raise ValueError(msg)

    def _check(
        self,
        kind: str,
        grps: list[int],
        prop_inds: list[int | None],
        preds: list[Predictor],
        widths: list[int],
        n_modes: list[int],
    ) -> None:
        n = len(widths)
        if not (len(grps) == len(prop_inds) == len(preds) == n):
            msg = (
                f"{kind}_grps ({len(grps)}), {kind}_props ({len(prop_inds)}) and the predictors ({len(preds)}) "
                f"must each have one entry per model {kind} group ({n})."
            )
            raise ValueError(msg)
        for g, (grp, pi, pred) in enumerate(zip(grps, prop_inds, preds, strict=True)):
            if not 0 <= grp < len(self.data.data) or self.data.n_vars(grp) != widths[g]:
                have = self.data.n_vars(grp) if 0 <= grp < len(self.data.data) else "no such group"
                msg = f"{kind}_grps[{g}] = {grp}: data group width {have} does not match the model's {widths[g]}."
                raise ValueError(msg)
            if isinstance(pred, torch.Tensor):
                if tuple(pred.shape) != (widths[g], n_modes[g]):
                    want = (widths[g], n_modes[g])
                    msg = f"{kind} predictor {g} is a tensor of shape {tuple(pred.shape)}; expected {want}."
                    raise ValueError(msg)
            elif pi is None or not 0 <= pi < len(self.props) or self.props[pi].shape[0] != widths[g]:
                msg = (
                    f"{kind}_props[{g}] = {pi} must index props with {widths[g]} rows for predictor module {g}; "
                    f"props have rows {[p.shape[0] for p in self.props]}."
                )
                raise ValueError(msg)

    def predictors(self) -> list[nn.Module]:
        """Predictor modules of this subject, in order (p groups, then u groups), each once."""
        return unique_by_identity([m for m in self.p_preds + self.u_preds if isinstance(m, nn.Module)])

    def modes(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """P and U for this subject: fixed tensors, or predictors applied to the properties (on the model's device)."""
        dev = self.device

        def one(pred: Predictor, pi: int | None) -> torch.Tensor:
            if isinstance(pred, torch.Tensor):
                return pred if dev is None else pred.to(dev)
            prop = self.props[pi]
            first = next(iter(pred.parameters()), prop)
            out = pred(prop.to(first.device))
            return out if dev is None else out.to(dev)

        return (
            [one(p, i) for p, i in zip(self.p_preds, self.input_props, strict=True)],
            [one(u, i) for u, i in zip(self.u_preds, self.output_props, strict=True)],
        )

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Predictor-module parameters, Parameter predictors, then ``s_mdl.trainable_parameters()``; each once."""
        params: list = [p for m in self.predictors() for p in m.parameters()]
        params += [t for t in self.p_preds + self.u_preds if isinstance(t, nn.Parameter)]
        return unique_by_identity(params + self.s_mdl.trainable_parameters())

    def to(self, device: torch.device | str | int, distribute_data: bool = False) -> None:
        """Move model, properties and predictors (Parameters in place, so they stay leaves); data only if asked."""
        device = torch.device(device)
        self.s_mdl.to(device)
        self.props = [p.to(device) for p in self.props]
        for m in self.predictors():
            m.to(device)
        for preds in (self.p_preds, self.u_preds):
            for i, t in enumerate(preds):
                if isinstance(t, nn.Parameter):
                    t.data = t.data.to(device)
                elif isinstance(t, torch.Tensor):
                    preds[i] = t.to(device)
        if distribute_data:
            self.data.to(device)
        self.device = device
