"""``LatentRegModel``: input groups → p modes → latent map → u modes → s → scales, offsets, direct pairs → noise ψ."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["LatentRegModel"]

Overrides = Sequence[torch.Tensor | None] | None


def _flags(value: bool | Sequence[bool], n: int, name: str) -> list[bool]:
    """Broadcast a bool to ``n`` per-group flags, or check a per-group list."""
    if isinstance(value, bool):
        return [value] * n
    flags = list(value)
    if len(flags) != n or not all(isinstance(f, bool) for f in flags):
        msg = f"{name} must be a bool or a list of {n} bools; got {value!r}."
        raise ValueError(msg)
    return flags


def _pick(own: list[Any], override: Overrides, name: str) -> list[Any]:
    """Per-group override list whose ``None`` entries fall back to the model's own values."""
    if override is None:
        return list(own)
    if len(override) != len(own):
        msg = f"{name} must have one entry per group ({len(own)}); got {len(override)}."
        raise ValueError(msg)
    return [o if v is None else v for o, v in zip(own, override, strict=True)]


def _out_map(s_h: nn.Module, t_h: torch.Tensor, u_h: torch.Tensor, off: torch.Tensor | None) -> torch.Tensor:
    """``off + s_h(t_h @ u_h.T)`` (no offset when ``off`` is None); one ``addmm`` when ``s_h`` is the identity."""
    if isinstance(s_h, nn.Identity):
        return t_h @ u_h.T if off is None else torch.addmm(off, t_h, u_h.T)
    w = s_h(t_h @ u_h.T)
    return w if off is None else off + w


class LatentRegModel(nn.Module):
    """Gaussian latent regression of H output groups on G input groups (janelia_core's model).

    For a batch of n rows, ``X_g`` is ``(n, d_in[g])``:

    1. ``Proj_g = X_g P_g`` with ``P_g`` ``(d_in[g], d_proj[g])``;
    2. ``[Tran_h] = m([Proj_g])``, ``Tran_h`` ``(n, d_trans[h])``;
    3. ``Z_h = Tran_h U_hᵀ`` with ``U_h`` ``(d_out[h], d_trans[h])``; ``O_h = s_h(Z_h)``;
    4. ``W_h = sc_h ⊙ O_h`` if ``use_scales``, then ``off_h + W_h`` if ``use_offsets``;
    5. ``Mn_h = W_h + Σ_{(g, h) in direct_pairs} c_{g,h} ⊙ X_g``; ``y_h = Mn_h + N(0, diag ψ_h)``.

    Parameters
    ----------
    d_in, d_out, d_proj, d_trans : sequence of int
        Group widths: ``d_in[g]``, ``d_proj[g]`` per input group, ``d_out[h]``, ``d_trans[h]`` per output group.
    m : nn.Module
        Latent map from the list of ``(n, d_proj[g])`` to the list of ``(n, d_trans[h])``.
    s : sequence of nn.Module
        ``s[h]`` maps ``(n, d_out[h])`` to ``(n, d_out[h])``.
    use_scales, use_offsets : bool
        Whether steps 4's scales and offsets are used.
    assign_p_modes, assign_u_modes, assign_scales, assign_offsets, assign_psi : bool or list of bool
        Per group: create the parameter here (True) or leave the slot ``None`` to be supplied at call time.
    assign_direct_pair_mappings : bool or list of bool
        Per group: create the parameter here (True) or leave the slot ``None`` to be supplied at call time.
    direct_pairs : sequence of (g, h) or None
        Pairs with ``d_in[g] == d_out[h]`` that add ``c_{g,h} ⊙ X_g`` to output h.
    w_gain : float
        Gain of the Xavier-normal initialisation of P and U.
    sc_std, dm_std : float
        Scales start at ``1 + N(0, sc_std²)`` (janelia started them near 0), direct maps at ``N(0, dm_std²)``.
    noise_range : (float, float)
        ψ starts uniform in this range.

    Examples
    --------
    >>> from streamreg.regression import IdentityMap
    >>> mdl = LatentRegModel([5], [4], [2], [2], IdentityMap(), [nn.Identity()], use_offsets=True)
    >>> mdl([torch.zeros(3, 5)])[0].shape
    torch.Size([3, 4])
    """

    def __init__(
        self,
        d_in: Sequence[int],
        d_out: Sequence[int],
        d_proj: Sequence[int],
        d_trans: Sequence[int],
        m: nn.Module,
        s: Sequence[nn.Module],
        use_scales: bool = False,
        assign_scales: bool | Sequence[bool] = True,
        use_offsets: bool = False,
        assign_offsets: bool | Sequence[bool] = True,
        direct_pairs: Sequence[tuple[int, int]] | None = None,
        assign_direct_pair_mappings: bool | Sequence[bool] = True,
        assign_p_modes: bool | Sequence[bool] = True,
        assign_u_modes: bool | Sequence[bool] = True,
        assign_psi: bool | Sequence[bool] = True,
        w_gain: float = 1.0,
        sc_std: float = 0.01,
        dm_std: float = 0.1,
        noise_range: Sequence[float] = (0.1, 0.2),
    ) -> None:
        super().__init__()
        self.d_in, self.d_out, self.d_proj, self.d_trans = list(d_in), list(d_out), list(d_proj), list(d_trans)
        self._check_sizes(s, direct_pairs)
        n_in, n_out = len(self.d_in), len(self.d_out)
        self.m, self.s = m, nn.ModuleList(s)
        self.use_scales, self.use_offsets = use_scales, use_offsets
        self.direct_pairs = [tuple(p) for p in (direct_pairs or [])]
        self.p_trainable = _flags(assign_p_modes, n_in, "assign_p_modes")
        self.u_trainable = _flags(assign_u_modes, n_out, "assign_u_modes")
        self.scales_trainable = _flags(assign_scales, n_out, "assign_scales") if use_scales else [False] * n_out
        self.offsets_trainable = _flags(assign_offsets, n_out, "assign_offsets") if use_offsets else [False] * n_out
        self.direct_mappings_trainable = _flags(
            assign_direct_pair_mappings, len(self.direct_pairs), "assign_direct_pair_mappings"
        )
        self.psi_trainable = _flags(assign_psi, n_out, "assign_psi")
        xav = [
            nn.init.xavier_normal_(torch.empty(d, k), gain=w_gain) for d, k in zip(self.d_in, self.d_proj, strict=True)
        ]
        self.p = self._register("p", xav, self.p_trainable)
        xav = [
            nn.init.xavier_normal_(torch.empty(d, k), gain=w_gain)
            for d, k in zip(self.d_out, self.d_trans, strict=True)
        ]
        self.u = self._register("u", xav, self.u_trainable)
        self.scales = self._register("sc", [1 + sc_std * torch.randn(d) for d in self.d_out], self.scales_trainable)
        self.offsets = self._register("o", [torch.zeros(d) for d in self.d_out], self.offsets_trainable)
        dm = [dm_std * torch.randn(self.d_out[h]) for _, h in self.direct_pairs]
        self.direct_mappings = self._register("c", dm, self.direct_mappings_trainable)
        lo, hi = float(noise_range[0]), float(noise_range[1])
        self.psi = self._register("psi", [lo + (hi - lo) * torch.rand(d) for d in self.d_out], self.psi_trainable)

    def _check_sizes(self, s: Sequence[nn.Module], direct_pairs: Sequence[tuple[int, int]] | None) -> None:
        if len(self.d_proj) != len(self.d_in) or len(self.d_trans) != len(self.d_out) or len(s) != len(self.d_out):
            msg = (
                f"d_proj ({len(self.d_proj)}) must match d_in ({len(self.d_in)}); d_trans ({len(self.d_trans)}) "
                f"and s ({len(s)}) must match d_out ({len(self.d_out)})."
            )
            raise ValueError(msg)
        for g, h in direct_pairs or []:
            if not (0 <= g < len(self.d_in) and 0 <= h < len(self.d_out)) or self.d_in[g] != self.d_out[h]:
                msg = (
                    f"direct pair {(g, h)} must name an input and an output group of equal width; "
                    f"d_in={self.d_in}, d_out={self.d_out}."
                )
                raise ValueError(msg)

    def _register(self, prefix: str, values: list[torch.Tensor], assign: list[bool]) -> list[nn.Parameter | None]:
        """Register ``values[i]`` as parameter ``f"{prefix}{i}"`` where ``assign[i]``; ``None`` elsewhere."""
        out: list[nn.Parameter | None] = []
        for i, (v, a) in enumerate(zip(values, assign, strict=True)):
            param = nn.Parameter(v) if a else None
            if param is not None:
                self.register_parameter(f"{prefix}{i}", param)
            out.append(param)
        return out

    def forward(self, x: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Means ``[(n, d_out[h])]`` for inputs ``[(n, d_in[g])]``, using the model's own parameters."""
        return self.cond_forward(x)

    def cond_forward(
        self,
        x: Sequence[torch.Tensor],
        p: Overrides = None,
        u: Overrides = None,
        scales: Overrides = None,
        offsets: Overrides = None,
        direct_mappings: Overrides = None,
    ) -> list[torch.Tensor]:
        """Means given inputs and optional per-group overrides (``None`` entries use the model's own).

        Parameters
        ----------
        x : list of Tensor
            ``x[g]`` is ``(n, d_in[g])``.
        p, u, scales, offsets, direct_mappings : list or None
            Overrides: ``p[g]`` ``(d_in[g], d_proj[g])``, ``u[h]`` ``(d_out[h], d_trans[h])``, ``scales[h]`` and
            ``offsets[h]`` ``(d_out[h],)``, ``direct_mappings[k]`` ``(d_out[h],)`` for ``direct_pairs[k]``.

        Returns
        -------
        list of Tensor
            ``mn[h]`` is ``(n, d_out[h])``.
        """
        if len(x) != len(self.d_in):
            msg = f"x must have one tensor per input group ({len(self.d_in)}); got {len(x)}."
            raise ValueError(msg)
        p, u = _pick(self.p, p, "p"), _pick(self.u, u, "u")
        missing = [f"p[{i}]" for i, v in enumerate(p) if v is None] + [f"u[{i}]" for i, v in enumerate(u) if v is None]
        if missing:
            msg = f"modes {missing} are not assigned in the model; pass them to cond_forward."
            raise ValueError(msg)
        tran = self.m([x_g @ p_g for x_g, p_g in zip(x, p, strict=True)])
        offs = _pick(self.offsets, offsets, "offsets") if self.use_offsets else [None] * len(u)
        mn = [_out_map(s_h, t_h, u_h, None if self.use_scales else off)
              for s_h, t_h, u_h, off in zip(self.s, tran, u, offs, strict=True)]
        if self.use_scales:
            mn = [sc * w for sc, w in zip(_pick(self.scales, scales, "scales"), mn, strict=True)]
            if self.use_offsets:
                mn = [off + w for off, w in zip(offs, mn, strict=True)]
        for (g, h), c in zip(
            self.direct_pairs, _pick(self.direct_mappings, direct_mappings, "direct_mappings"), strict=True
        ):
            mn[h] = mn[h] + c * x[g]
        return mn

    def neg_ll(self, y: list[torch.Tensor], mn: list[torch.Tensor], psi: Overrides = None) -> torch.Tensor:
        """Negative log-likelihood summed over samples and outputs: ``-Normal(mn, √ψ).log_prob(y).sum()``.

        ``y[h]`` and ``mn[h]`` are ``(n, d_out[h])``; ``psi`` overrides ψ per group (``None`` entries use the model's).
        """
        if not isinstance(y, list) or not isinstance(mn, list):
            msg = f"y and mn must be lists of tensors; got {type(y).__name__} and {type(mn).__name__}."
            raise TypeError(msg)
        total = None
        for y_h, mn_h, psi_h in zip(y, mn, _pick(self.psi, psi, "psi"), strict=True):
            n, d = y_h.shape[0], y_h.shape[1]
            term = 0.5 * n * d * math.log(2 * math.pi) + 0.5 * n * torch.log(psi_h).sum()
            term = term + 0.5 * ((y_h - mn_h).square().sum(0) / psi_h).sum()  # sum over samples first: d divisions
            total = term if total is None else total + term
        return total

    def generate(self, x: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Sample ``y[h] = mn[h] + randn · √ψ_h`` (under ``no_grad``; global torch RNG)."""
        with torch.no_grad():
            return [
                mn_h + torch.randn_like(mn_h) * torch.sqrt(psi_h)
                for mn_h, psi_h in zip(self.forward(x), self.psi, strict=True)
            ]

    def recursive_generate(self, x: Sequence[torch.Tensor], r_map: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
        """Simulate row by row, filling NaN rows of mapped inputs from the previous row's sampled output.

        Parameters
        ----------
        x : list of Tensor
            ``x[g]`` is ``(T, d_in[g])``; a row of a mapped group that is all or partly NaN is replaced.
        r_map : sequence of (h, g)
            Output group h at row t−1 feeds input group g at row t (``d_out[h] == d_in[g]``).

        Returns
        -------
        list of Tensor
            Sampled outputs ``y[h]`` ``(T, d_out[h])``.
        """
        x = [x_g.clone() for x_g in x]
        mapped = {g: h for h, g in r_map}
        for g, x_g in enumerate(x):
            if g not in mapped and bool(torch.isnan(x_g).any()):
                msg = f"x[{g}] holds NaN but input group {g} is not fed by r_map={list(r_map)}."
                raise ValueError(msg)
            if g in mapped and bool(torch.isnan(x_g[0]).any()):
                msg = f"x[{g}] holds NaN in row 0, which has no previous output to fill it from."
                raise ValueError(msg)
        ys: list[list[torch.Tensor]] = [[] for _ in self.d_out]
        for t in range(x[0].shape[0]):
            for g, h in mapped.items():
                if t > 0 and bool(torch.isnan(x[g][t]).any()):
                    x[g][t] = ys[h][-1][0]
            for h, y_h in enumerate(self.generate([x_g[t : t + 1] for x_g in x])):
                ys[h].append(y_h)
        return [torch.cat(y_h, dim=0) for y_h in ys]

    def trainable_parameters(self) -> list[nn.Parameter]:
        """m's and s's parameters, then the assigned trainable p, u, scales, offsets, direct maps and ψ, in order."""
        params = list(self.m.parameters()) + list(self.s.parameters())
        for values, flags in (
            (self.p, self.p_trainable),
            (self.u, self.u_trainable),
            (self.scales, self.scales_trainable),
            (self.offsets, self.offsets_trainable),
            (self.direct_mappings, self.direct_mappings_trainable),
            (self.psi, self.psi_trainable),
        ):
            params += [v for v, f in zip(values, flags, strict=True) if f and v is not None]
        return params
