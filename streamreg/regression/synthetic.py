"""The synthetic multi-subject problem of the janelia_core reference (§8.1), in memory or written to HDF5.

Each subject has ``d_in`` input and ``d_out`` output variables at random 3-D positions in ``[0, 1)³``. The true
modes ``P = f_p(pos_in)`` ``(d_in, 2)`` and ``U = f_u(pos_out)`` ``(d_out, 2)`` come from fixed smooth functions
shared by all subjects, and ``y[t+1] = U Pᵀ x[t] + off + ε`` with ``x ~ N(0, I)``, ``ψ ~ U(0.2, 0.5)`` and
``off ~ N(0, 0.5²)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np

__all__ = ["SyntheticSubject", "make_synthetic_subjects", "true_modes", "write_synthetic_h5"]


def true_modes(pos: np.ndarray) -> np.ndarray:
    """The fixed smooth mode functions: ``(n, 3)`` positions in ``[0, 1)³`` to ``(n, 2)`` modes."""
    x, y, z = pos[:, 0], pos[:, 1], pos[:, 2]
    modes = [np.sin(2 * np.pi * x) * np.cos(np.pi * y) + 0.5 * z, np.cos(2 * np.pi * z) * (y - 0.3)]
    return 0.55 * np.stack(modes, axis=1)


@dataclass
class SyntheticSubject:
    """One subject: series ``x`` ``(T, d_in)`` and ``y`` ``(T, d_out)`` (train and held out), truth and positions."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    pos_in: np.ndarray
    pos_out: np.ndarray
    p: np.ndarray
    u: np.ndarray
    offsets: np.ndarray
    psi: np.ndarray

    @property
    def w(self) -> np.ndarray:
        """The true ``U Pᵀ`` ``(d_out, d_in)``."""
        return self.u @ self.p.T

    def oracle_mean(self, x: np.ndarray) -> np.ndarray:
        """True mean of ``y[t+1]`` given ``x[t]``, ``(T, d_in)`` → ``(T, d_out)``."""
        return x @ self.w.T + self.offsets


def _series(rng: np.random.Generator, n: int, s: SyntheticSubject) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_normal((n + 1, s.p.shape[0])).astype(np.float32)
    y = np.zeros((n + 1, s.u.shape[0]), np.float32)
    y[1:] = s.oracle_mean(x[:-1]) + rng.standard_normal((n, s.u.shape[0])) * np.sqrt(s.psi)
    y[0] = s.offsets + rng.standard_normal(s.u.shape[0]) * np.sqrt(s.psi)
    return x, y


def make_synthetic_subjects(
    n_subjects: int = 3, n_train: int = 20000, n_test: int = 5000, d_in: int = 50, d_out: int = 40, seed: int = 0
) -> list[SyntheticSubject]:
    """Subjects of the §8.1 problem; ``n_train``/``n_test`` (x[t], y[t+1]) samples each (series of n + 1 rows)."""
    rng = np.random.default_rng(seed)
    subjects = []
    for _ in range(n_subjects):
        pos_in, pos_out = rng.random((d_in, 3)), rng.random((d_out, 3))
        s = SyntheticSubject(
            x=np.empty(0), y=np.empty(0), x_test=np.empty(0), y_test=np.empty(0), pos_in=pos_in, pos_out=pos_out,
            p=true_modes(pos_in), u=true_modes(pos_out), offsets=0.5 * rng.standard_normal(d_out),
            psi=rng.uniform(0.2, 0.5, d_out),
        )
        s.x, s.y = _series(rng, n_train, s)
        s.x_test, s.y_test = _series(rng, n_test, s)
        subjects.append(s)
    return subjects


def write_synthetic_h5(path: str, subjects: list[SyntheticSubject]) -> list[dict[str, str]]:
    """Write each subject's training series to ``/subject{i}/x`` and ``/y`` (time-first); return the locations."""
    with h5py.File(path, "w") as f:
        for i, s in enumerate(subjects):
            f.create_dataset(f"subject{i}/x", data=s.x, chunks=(min(4096, len(s.x)), s.x.shape[1]))
            f.create_dataset(f"subject{i}/y", data=s.y, chunks=(min(4096, len(s.y)), s.y.shape[1]))
    return [{"x": f"{path}:/subject{i}/x", "y": f"{path}:/subject{i}/y"} for i in range(len(subjects))]
