"""The :class:`Recorder`: scalars, figures, images and parameters to CSV, TensorBoard and the console.

Only rank 0 writes. Scalars are buffered and written at :meth:`Recorder.step`,
which flushes every backend, so everything recorded up to the last ``step()``
survives a SIGKILL; ``scalars.csv`` is also fsynced at a step at most every
``fsync_interval`` seconds (and at ``close()``), against power loss.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from streamreg.experiment import distributed, runtime
from streamreg.experiment._events import EventFile, import_summary
from streamreg.experiment.checkpoint import _write_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Recorder"]

_HEADER = ["step", "tag", "value"]
_REDUCTIONS = (None, "mean")


def _tensorboard_installed() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def _close(file: io.TextIOBase | None, writer: Any) -> None:
    if file is not None and not file.closed:
        file.close()
    if writer is not None:
        writer.close()


def _as_image(image: Any) -> tuple[np.ndarray, str]:
    """``image`` (numpy, tensor or PIL; HW, HWC or CHW) as a numpy array and its layout, "HW" or "HWC"."""
    if isinstance(image, torch.Tensor):
        array = image.detach().cpu().numpy()
    else:
        array = np.asarray(image)  # PIL images give HW or HWC
    if array.ndim == 3 and array.shape[-1] not in (1, 3, 4) and array.shape[0] in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # CHW -> HWC
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))):
        msg = f"image must have shape HW, HWC or CHW with 1, 3 or 4 channels; got {array.shape}."
        raise ValueError(msg)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif array.dtype.kind == "f":
        array = np.clip(array, 0.0, 1.0).astype(np.float32)
    elif array.dtype != np.uint8:
        msg = f"image must be uint8, bool or floating point in [0, 1]; got dtype {array.dtype}."
        raise TypeError(msg)
    return array, "HW" if array.ndim == 2 else "HWC"


class Recorder:
    """Record scalars, figures, images and parameters of a run, indexed by a step counter.

    Parameters
    ----------
    output_dir : path, optional
        Folder to write to; the running experiment's folder by default.
    tensorboard : bool or None, default None
        Write TensorBoard events (``events.out.tfevents.*`` in ``output_dir``),
        summaries built by ``torch.utils.tensorboard``, written synchronously. ``None``: when tensorboard is
        installed. ``True`` raises ``ImportError`` naming the extra if it is not.
    file : bool, default True
        Write ``scalars.csv`` (long form ``step,tag,value``, one row per
        scalar), ``figures/``, ``images/`` and ``params.json``.
    console : bool, default False
        Print the scalars of each step.
    fsync_interval : float or None, default 1.0
        At a :meth:`step`, ``fsync`` ``scalars.csv`` if this many seconds have
        passed since the last fsync (``0``: at every step; ``None``: only at
        ``close()``). The flush at every step already survives the death of the
        process; fsync guards against power loss, and costs 0.1-5 ms on a busy
        disk, which is why it is rate-limited by default.

    Notes
    -----
    Each Recorder has its own writer: two Recorders with different folders
    write to their own files. On ranks other than 0 nothing is written, but
    ``scalar(..., reduce="mean")`` still takes part in the all-reduce, so every
    rank must call it. A resumed Recorder (:meth:`load_state_dict`) drops the
    rows and events the killed run wrote after its checkpoint.

    Examples
    --------
    >>> import tempfile
    >>> rec = Recorder(tempfile.mkdtemp(), tensorboard=False)
    >>> rec.scalar("loss", 0.5)
    >>> rec.step()
    >>> rec.count
    1
    >>> rec.close()
    """

    def __init__(self, output_dir: str | os.PathLike[str] | None = None, tensorboard: bool | None = None,
                 file: bool = True, console: bool = False, *, fsync_interval: float | None = 1.0) -> None:
        if fsync_interval is not None and (isinstance(fsync_interval, bool) or not isinstance(
                fsync_interval, (int, float)) or fsync_interval < 0):
            msg = f"fsync_interval must be a non-negative number of seconds or None; got {fsync_interval!r}."
            raise ValueError(msg)
        if tensorboard is True:
            import_summary()
        self.output_dir = Path(output_dir) if output_dir is not None else runtime.output_dir()
        self.count = 0
        self.active = distributed.is_master()
        self.use_tensorboard = bool(tensorboard) if tensorboard is not None else _tensorboard_installed()
        self.use_file = file
        self.console = console
        self.fsync_interval = fsync_interval
        self._last_fsync = time.monotonic()
        self._pending: list[tuple[str, Any]] = []
        self._file: io.TextIOWrapper | None = None
        self._writer: Any = None
        self._purge_step: int | None = None
        self._finalizer = weakref.finalize(self, _close, None, None)
        if self.active:
            self.output_dir.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        backends = [n for n, on in (("tensorboard", self.use_tensorboard), ("file", self.use_file),
                                    ("console", self.console)) if on]
        state = "active" if self.active else "silent (rank != 0)"
        return f"<Recorder {str(self.output_dir)!r} count={self.count} {'+'.join(backends) or 'no backends'}, {state}>"

    # -- backends, opened on first use ------------------------------------------
    def _csv(self) -> Any:
        if self._file is None:
            path = self.output_dir / "scalars.csv"
            new = not path.exists() or path.stat().st_size == 0
            self._file = open(path, "a", newline="", encoding="utf-8")  # noqa: SIM115 (kept open, closed in close())
            self._csv_writer = csv.writer(self._file)
            if new:
                self._csv_writer.writerow(_HEADER)
            self._reset_finalizer()
        return self._csv_writer

    def _tensorboard(self) -> Any:
        if self._writer is None:
            self._writer = EventFile(self.output_dir, self._purge_step)
            self._reset_finalizer()
        return self._writer

    def _reset_finalizer(self) -> None:
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _close, self._file, self._writer)

    # -- recording -----------------------------------------------------------------
    def scalar(self, tag: str, value: float | torch.Tensor, reduce: str | None = None) -> None:
        """Record ``value`` under ``tag`` at the current :attr:`count`.

        Parameters
        ----------
        tag : str
            Any text (commas and quotes are quoted in the CSV).
        value : float or Tensor
            A number or a one-element tensor. Tensors are read (``.item()``, a
            device sync) only at :meth:`step`.
        reduce : {None, "mean"}
            ``"mean"`` averages ``value`` over all ranks first (collective).
        """
        if not isinstance(tag, str):
            msg = f"tag must be a str; got {tag!r} of type {type(tag).__name__}."
            raise TypeError(msg)
        if reduce not in _REDUCTIONS:
            msg = f"reduce must be one of {list(_REDUCTIONS)}; got {reduce!r}."
            raise ValueError(msg)
        if reduce == "mean":
            value = distributed.all_reduce_mean(value)
        if self.active:
            self._pending.append((tag, value.detach() if isinstance(value, torch.Tensor) else value))

    def step(self) -> None:
        """Write the scalars recorded at this :attr:`count`, flush every backend, then advance the count."""
        self._write_pending()
        self.count += 1

    def _write_pending(self) -> None:
        if not self.active:
            return
        rows = [(self.count, tag, float(v.item() if isinstance(v, torch.Tensor) else v)) for tag, v in self._pending]
        self._pending.clear()
        if self.use_file:
            writer = self._csv()
            writer.writerows(rows)
            self._file.flush()  # type: ignore[union-attr]
            now = time.monotonic()
            if self.fsync_interval is not None and now - self._last_fsync >= self.fsync_interval:
                os.fsync(self._file.fileno())  # type: ignore[union-attr]
                self._last_fsync = now
        if self.use_tensorboard:
            tb = self._tensorboard()
            for step, tag, value in rows:
                tb.add_scalar(tag, value, step)
            tb.flush()
        if self.console and rows:
            print(f"counter: {self.count}")
            for _, tag, value in rows:
                print(f"{tag}: {value}")

    def figure(self, tag: str, figure: Figure) -> None:
        """Record a matplotlib ``figure`` (``figures/<tag>-<count>.png``; the figure stays open)."""
        from matplotlib.figure import Figure  # imported here: matplotlib takes a second to import

        if not isinstance(figure, Figure):
            msg = f"figure must be a matplotlib.figure.Figure; got {type(figure).__name__}."
            raise TypeError(msg)
        if not self.active:
            return
        if self.use_file:
            path = self._media_path("figures", tag)
            _write_atomic(path, lambda f: figure.savefig(f, format="png"))
        if self.use_tensorboard:
            self._tensorboard().add_figure(tag, figure, self.count)

    def image(self, tag: str, image: Any) -> None:
        """Record an image: numpy, tensor or PIL; HW, HWC or CHW; uint8, bool or float in [0, 1]."""
        array, layout = _as_image(image)
        if not self.active:
            return
        if self.use_file:
            import matplotlib.image

            path = self._media_path("images", tag)
            cmap = "gray" if layout == "HW" else None
            _write_atomic(path, lambda f: matplotlib.image.imsave(f, array, cmap=cmap, format="png",
                                                                   vmin=0, vmax=255 if array.dtype == np.uint8 else 1))
        if self.use_tensorboard:
            self._tensorboard().add_image(tag, array, self.count, dataformats=layout)

    def _media_path(self, folder: str, tag: str) -> Path:
        directory = self.output_dir / folder
        directory.mkdir(exist_ok=True)
        return directory / f"{tag.replace('/', '.')}-{self.count}.png"

    def params(self, params: Mapping[str, Any]) -> None:
        """Record the run's parameters: ``params.json`` and TensorBoard hparams (in the same events file)."""
        if not isinstance(params, Mapping):
            msg = f"params must be a mapping of names to values; got {type(params).__name__}."
            raise TypeError(msg)
        if not self.active:
            return
        plain = {str(k): v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in params.items()}
        if self.use_file:
            text = json.dumps(plain, indent=2, sort_keys=True).encode()
            _write_atomic(self.output_dir / "params.json", lambda f: f.write(text))
        if self.use_tensorboard:
            self._tensorboard().add_hparams(plain)

    # -- state and lifetime ----------------------------------------------------------
    def state_dict(self) -> dict[str, int]:
        """Return ``{"count": count}``."""
        return {"count": self.count}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        """Continue from ``state``: set the count and drop the records of later steps.

        Rows of ``scalars.csv`` with a step at or past the restored count (written
        by a run killed after its checkpoint) are removed, and TensorBoard is told
        to purge its events from that step on.
        """
        if not isinstance(state, Mapping) or sorted(state) != ["count"]:
            msg = f"Recorder state must be {{'count': int}}; got {state!r:.80}."
            raise KeyError(msg)
        count = state["count"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            msg = f"state['count'] must be a non-negative int; got {count!r}."
            raise ValueError(msg)
        self.count = count
        self._pending.clear()
        if self.active:
            self._truncate_csv(count)
            self._purge_step = count

    def _truncate_csv(self, count: int) -> None:
        path = self.output_dir / "scalars.csv"
        if not self.use_file or not path.exists():
            return
        if self._file is not None:
            self._file.close()
            self._file = None
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        kept = [rows[0], *(r for r in rows[1:] if r and int(r[0]) < count)]
        buffer = io.StringIO(newline="")
        csv.writer(buffer).writerows(kept)
        data = buffer.getvalue().encode("utf-8")
        _write_atomic(path, lambda f: f.write(data))

    def close(self) -> None:
        """Write pending scalars (at the current count, without stepping) and close the writers."""
        self._write_pending()
        self._finalizer.detach()
        if self._file is not None:
            os.fsync(self._file.fileno())
        _close(self._file, self._writer)
        self._file = None
        self._writer = None

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
