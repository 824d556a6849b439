"""The :class:`Layer` base class: a ``torch.nn.Module`` with explicit streaming state and ``run``."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from streamreg._keywords import suggest_keywords
from streamreg._modules import module_device

__all__ = ["EXACT_TORCH_MODULES", "Layer", "module_device", "module_history"]

State = dict[str, Any]

_TORCH_FLOATS = {np.dtype(np.float16): torch.float16, np.dtype(np.float32): torch.float32,
                 np.dtype(np.float64): torch.float64}


class Layer(nn.Module):
    """Base class of every streamreg model.

    A Layer maps a time-first tensor ``(T, *frame_in)`` to ``(T, *frame_out)``
    and carries whatever it needs from past chunks in named *streaming state*.
    Calling the layer on consecutive chunks therefore gives the same output as
    one call on the whole recording (the chunk-invariance law).

    Subclasses implement :meth:`forward`, declare their state with
    :meth:`register_state` and, if they look back in time, override
    :attr:`own_history`.

    Notes
    -----
    Shape: input ``(T, *frame_in)``, output ``(T, *frame_out)``.
    State: registered buffers (``persistent=False``, so ``state_dict`` holds
    parameters only); ``None`` means fresh. :meth:`get_state` returns deep copies.
    Chunking: :meth:`run` splits axis 0 into chunks of ``dt`` frames.
    """

    #: True when chunked output is bitwise equal to one-shot output.
    #: Layers that use FFTs or blocked reductions set it to False; containers
    #: are bitwise only if all their children are.
    bitwise_chunking: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self._state_names: list[str] = []

    # -- streaming state -------------------------------------------------
    def register_state(self, name: str, value: torch.Tensor | None = None) -> None:
        """Declare a streaming-state tensor ``name`` (``None`` until the first chunk)."""
        self.register_buffer(name, value, persistent=False)
        self._state_names.append(name)

    @property
    def state_names(self) -> tuple[str, ...]:
        """Names of this layer's own state tensors (children not included)."""
        return tuple(self._state_names)

    def reset_state(self) -> None:
        """Return this layer and every sub-layer to a fresh state (zero history)."""
        for module in self.modules():
            if isinstance(module, Layer):
                for name in module._state_names:
                    setattr(module, name, None)

    def get_state(self) -> State:
        """Return the streaming state as a nested dict of tensor copies.

        Own state tensors are keyed by name (``None`` when fresh); sub-modules
        holding state appear as nested dicts under their attribute names. The
        result round-trips through ``torch.save`` / ``torch.load(weights_only=True)``.
        """
        return _collect_state(self)

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore a state returned by :meth:`get_state`.

        Raises
        ------
        KeyError
            If ``state`` has keys this model does not, or lacks keys it has.
        TypeError
            If a value is neither a tensor, ``None`` nor a nested mapping.
        """
        device = module_device(self)
        _apply_state(self, state, "state", device)

    @contextlib.contextmanager
    def fresh(self) -> Iterator[Layer]:
        """Context manager: reset the streaming state on entry and on exit.

        ``layer(x)`` continues from the state the previous call left, so a
        hand-written training loop that calls the layer on unrelated pieces
        should wrap each piece::

            for x, y in pieces:
                with layer.fresh():
                    loss = loss_fn(layer(x), y)

        Examples
        --------
        >>> import torch
        >>> from streamreg.filters import TemporalFIR
        >>> fir = TemporalFIR([1.0, 1.0])
        >>> with fir.fresh():
        ...     y = fir(torch.ones(3))
        >>> fir.get_state()
        {'past_input': None}
        """
        self.reset_state()
        try:
            yield self
        finally:
            self.reset_state()

    # -- history -----------------------------------------------------------
    @property
    def own_history(self) -> int | None:
        """Frames of past input this layer alone needs (``None``: unbounded).

        Default: 0 for a layer without streaming state of its own, ``None``
        (unbounded) for one that registers state and does not override this,
        so ``run(start=...)`` and segment fitting refuse it instead of silently
        returning frames computed from a too-short history.
        """
        return None if self._state_names else 0

    @property
    def history(self) -> int | None:
        """Frames of past input needed to compute the next output exactly.

        ``kernel length - 1`` for an FIR filter, ``None`` (unbounded) for a
        recursive one. A container adds up its children's histories: exact for
        a chain, an upper bound for parallel branches.
        """
        return module_history(self)

    # -- helpers -------------------------------------------------------------
    @property
    def chunk_exact(self) -> bool:
        """True if every sub-module is bitwise chunk invariant.

        Layers say so through ``bitwise_chunking``; plain torch modules count as
        exact only if they are containers or piecewise-linear activations
        (:data:`EXACT_TORCH_MODULES`), whose results do not depend on tensor size.
        """
        return all(_module_is_exact(m) for m in self.modules())

    def compute_dtype(self, input_dtype: Any = None) -> torch.dtype:
        """The floating dtype inputs are cast to.

        That of the first floating parameter or buffer; a layer without any
        keeps a floating ``input_dtype`` (numpy or torch); otherwise torch's default.
        """
        for t in itertools.chain(self.parameters(), _setting_buffers(self)):
            if t.is_floating_point():
                return t.dtype
        if input_dtype is not None:
            as_torch = input_dtype if isinstance(input_dtype, torch.dtype) else _TORCH_FLOATS.get(np.dtype(input_dtype))
            if as_torch is not None and as_torch.is_floating_point:
                return as_torch
        return torch.get_default_dtype()

    @suggest_keywords("run()")
    def run(
        self,
        input: Any,  # noqa: A002
        dt: int | None = None,
        *,
        output: Any = None,
        reset: bool = True,
        progress: bool | None = None,
        device: str | torch.device | None = None,
        max_memory: int | str | None = None,
        overwrite: bool = False,
        n_frames: int | None = None,
        start: int = 0,
        stop: int | None = None,
        warmup: int | None = None,
        checkpoint_every: int | None = None,
        resume: bool = False,
        swmr: bool | None = None,
        check_finite: bool = False,
        record: Sequence[str] | Mapping[str, Any] | None = None,
    ) -> Any:
        """Run the layer over a whole recording in chunks of ``dt`` frames.

        Parameters
        ----------
        input : numpy.ndarray, torch.Tensor, h5py.Dataset, str or Stream
            A time-first recording ``(T, *frame)``. A string ``"file.h5:/dataset"``
            names an HDF5 dataset (an NWB TimeSeries group stands for its ``data``).
            A :class:`~streamreg.streams.Stream` is read from its current position.
            Integer and bool inputs are cast to :meth:`compute_dtype`.
        dt : int, optional
            Chunk length in frames. ``None`` means one chunk, unless ``max_memory``
            is given, in which case ``dt`` is planned from the model's per-frame cost.
        output : None, numpy.ndarray, h5py.Dataset, h5py.Group, str or Stream, optional
            Where the output goes. ``None`` returns a new numpy array. A string
            ``"out.h5:/dataset"`` creates a dataset ``(T, *frame_out)`` resizable and
            chunked along time; the run opens and closes the file itself and returns the
            string (open it with h5py to read). A group (dataset ``"output"`` in it) or an
            existing dataset stays open and its dataset is returned; an array is filled in
            place; a writable stream is appended to and returned. The output must hold the
            model's dtype without loss (float32 into float16 is refused), and must not be
            the input dataset.
        reset : bool, default True
            Start from a fresh state, so that two identical calls give identical
            outputs. ``False`` continues from the current state (the next part of
            a recording).
        progress : bool, optional
            Show a tqdm bar. Default: on when the run has more than 3 chunks and
            stderr is a terminal.
        device : str or torch.device, optional
            Move the model (it stays there) and every chunk to this device; outputs
            come back to host memory (through pinned buffers on CUDA).
        max_memory : int or str, optional
            Memory budget for planning ``dt``, in bytes or as ``"512MB"``, ``"2GiB"``.
        overwrite : bool, default False
            Replace an existing output dataset (and checkpoint) instead of raising
            :class:`~streamreg.exceptions.OutputExistsError`.
        n_frames : int, optional
            Frames to run from ``start``: needed for an infinite input, a cap for one of
            unknown length (a stream that ends earlier gives as many output frames as it had).
        start, stop : int, optional
            Compute only frames ``[start, stop)``. Exactly ``history`` frames before
            ``start`` are read and their output discarded, so the result equals those
            frames of a whole run. A model with unbounded history (a recursive filter)
            raises ``ValueError`` unless ``warmup`` is given.
        warmup : int, optional
            Frames to run before ``start`` for a model with unbounded history; the result
            is then approximate, with an error that decays with ``warmup``.
        checkpoint_every : int, optional
            Every this many chunks, save the model's state and the input and output
            positions atomically beside the output file (``<file>.<dataset>.ckpt``),
            after the frames it counts are flushed. Needs an HDF5 output.
        resume : bool, default False
            Continue a run that was stopped or killed from its last checkpoint. The
            model, input, ``dt`` and frame range must be those of the first run; the
            output is then bit-identical to an uninterrupted run.
        swmr : bool, optional
            Live output: other processes can open the output file with
            ``h5py.File(path, "r", libver="latest", swmr=True)`` and read the frames
            flushed so far while the run goes on. Default: on when the run creates
            the file or the file was created with ``libver="latest"``.

        check_finite : bool, default False
            Raise ``FloatingPointError`` naming the first input frame that holds NaN or
            infinity, before the model sees it (a recursive filter spreads one NaN to every
            later frame).
        record : list of str or dict, optional
            Also write the outputs of these sub-modules, named by module path as in
            ``named_modules()`` (``"opl"``, ``"opl.center_lowpass"``), in the same pass, each
            ``(T, *frame)`` with the input's ``T``. A list puts each beside an HDF5 output
            (``"out.h5:/y"`` → ``"out.h5:/y_record/opl"``: a group named after the output, one
            dataset per module path, dots kept) or, with any other output, in a new numpy
            array. A dict ``{name: destination}`` takes any ``output`` form (``None``: a new
            array) under the same rules. Exact for every ``dt``, ``start``/``stop`` and resume;
            a module called more than once per forward is recorded only when its calls cover
            the chunk's frames in consecutive blocks (a layer working in blocks), otherwise
            ``ValueError``.

        Returns
        -------
        numpy.ndarray, str, h5py.Dataset or Stream
            ``(T, *frame_out)``: the array; ``"file.h5:/dataset"`` for a string output; the
            dataset for a group or dataset output; the stream when given one.
        tuple
            With ``record``: ``(output, recorded)`` instead, ``recorded`` a dict from module
            path to its record, in the same forms (a string for a string location).

        Raises
        ------
        TypeError
            For an unknown option (the message names the nearest valid one), or a bad type.
        ValueError
            For a bad value, a device this machine lacks, or a resume that does not match
            its checkpoint (another model, its settings, input frames, ``dt`` or range).
        OutputExistsError
            If the output dataset or a checkpoint exists and neither ``overwrite`` nor ``resume`` is given.
        BlockingIOError
            If another run, in this process or another, is writing into the output file
            (or a file a record goes to).

        Notes
        -----
        The run happens under ``torch.no_grad()``. One I/O thread reads the next chunk
        and writes the previous one while the model computes; each chunk's output is
        written straight to its destination, so peak memory depends on ``dt``, not on
        ``T``. If the model or a stream raises, every completed chunk stays written and
        flushed and the exception propagates; a failure before the first frame leaves no
        new file or dataset behind. ``T = 0`` gives an empty output with the right frame shape.

        Examples
        --------
        >>> import torch
        >>> from streamreg.models import Retina
        >>> y, rec = Retina().run(torch.rand(40, 8, 8), dt=16, record=["opl", "bipolar"])
        >>> y.shape, rec["opl"].shape, rec["bipolar"].shape
        ((40, 2, 8, 8), (40, 8, 8), (40, 8, 8))
        """
        from streamreg._run import RunOptions, run_layer

        opts = RunOptions(dt=dt, max_memory=max_memory, reset=reset, progress=progress, device=device,
                          overwrite=overwrite, n_frames=n_frames, start=start, stop=stop, warmup=warmup,
                          checkpoint_every=checkpoint_every, resume=resume, swmr=swmr, check_finite=check_finite)
        return run_layer(self, input, output, opts, record)


    @property
    def set_optimizer(self) -> Any:
        """Build an optimizer over this layer's parameters: ``layer.set_optimizer.LBFGS(lr=1)``.

        ``dir(layer.set_optimizer)`` lists every optimizer torch.optim exports that
        can be constructed (and any registered with
        :func:`streamreg.optim.register_optimizer`); the result is stored as
        ``layer.optimizer`` and returned. An unknown name raises ``AttributeError``
        listing the valid ones.
        """
        from streamreg.optim.selector import OptimizerSelector

        return OptimizerSelector(self)

    @suggest_keywords("optimize()")
    def optimize(
        self,
        input: Any,  # noqa: A002
        target: Any,
        dt: int | None = None,
        *,
        loss_fn: Any = None,
        optimizer: torch.optim.Optimizer | None = None,
        n_steps: int | None = None,
        learning_rates: Any = None,
        progress: bool | None = None,
        reduction: str = "mean",
        truncate: bool = False,
        device: str | torch.device | None = None,
        recorder: Any = None,
        check_finite: bool = False,
        mask: Any = None,
        trials: bool = False,
        segment: int | None = None,
        batch_segments: int = 1,
        epochs: int | None = None,
        seed: int | None = None,
        warmup: int | None = None,
        validation: Any = None,
        validation_split: str = "time",
        validate_every: int | None = None,
        patience: int | None = None,
    ) -> Any:
        """Fit the layer's parameters so that its output on ``input`` matches ``target``.

        Parameters
        ----------
        input, target : recording or list of recordings
            Each an array, tensor, h5py.Dataset, ``"file.h5:/dataset"`` or seekable Stream,
            time-first: ``(T, *frame_in)`` and ``(T, *frame_out)`` with equal ``T`` per pair
            (recordings may differ in length). Read through the same readers as :meth:`run`
            (a stream from its current position). The state is reset before each recording.
        dt : int, optional
            Chunk length in frames; ``None`` puts each recording (or segment) in one chunk.
        loss_fn : callable, default ``torch.nn.functional.mse_loss``
            ``loss_fn(output, target)`` evaluated per chunk; must return a scalar.
        optimizer : torch.optim.Optimizer, optional
            Default: ``layer.optimizer`` from :attr:`set_optimizer`. It must hold only this
            layer's parameters and every trainable one (``ValueError`` names the others).
        n_steps : int, optional
            Full-pass optimizer steps (default 1), each over all training data through a
            closure, so L-BFGS follows the one-shot trajectory. Not with ``segment``.
        learning_rates : number or list of (iteration, lr, ...) tuples, optional
            A schedule (:func:`streamreg.optim.format_and_check_learning_rates`) applied
            before each step: one rate for every parameter group, or one column per group.
        progress : bool, optional
            A tqdm bar counting steps, with the loss (default: on for several steps when
            stderr is a terminal).
        reduction : {"mean", "sum"}, default "mean"
            ``"mean"``: the frame-weighted mean ``Σ n_k/N · loss_fn(y_k, t_k)`` over all chunks of
            all recordings, equal to the one-shot loss of a loss that averages over frames, for
            every ``dt``. ``"sum"`` adds chunk losses: ``dt``-independent only for a loss that
            sums over frames (with a per-chunk mean such as the default, it changes with ``dt``).
        truncate : bool, default False
            Cut the gradient at chunk boundaries (truncated back-propagation): one pass
            instead of two, but a biased gradient. Never the default.
        device : str or torch.device, optional
            Move the layer there (it stays) and compute every chunk there.
        recorder : streamreg.experiment.Recorder, optional
            Gets ``optimize/loss``, ``optimize/learning_rate`` (and ``optimize/validation_loss``)
            at every step, then ``step()``.
        check_finite : bool, default False
            Check every input chunk; a ``FloatingPointError`` names the first non-finite input frame.
        mask : None, "nan", or boolean mask(s), optional
            Target elements to leave out of the loss: ``"nan"`` leaves out NaN target elements;
            or one boolean recording per target, ``(T,)`` (frames) or of the target's shape.
            The loss is then weighted by the kept elements, so ``dt`` cannot change it.
        trials : bool, default False
            Each input and target is one ``(n_trials, T, *frame)`` array or dataset of trials.
        segment : int, optional
            Stochastic fitting: each step draws ``batch_segments`` random segments of this many
            frames (without replacement within an epoch, over all recordings), each warmed up
            by ``history`` frames without loss, so its gradient is exact for that segment.
        batch_segments : int, default 1
            Segments per step.
        epochs : int, optional
            Passes over all segments (default 1); only with ``segment``.
        seed : int, optional
            Seed of the segment order: equal seeds give equal fits.
        warmup : int, optional
            Warm-up frames for a layer of unbounded history (needed with ``segment``); the
            segment gradient is then biased by the state those frames miss.
        validation : float or (inputs, targets), optional
            Held-out data, evaluated exactly: a fraction (see ``validation_split``) or separate
            recordings.
        validation_split : {"time", "recording"}, default "time"
            ``"time"``: the last fraction of every recording; ``"recording"``: the last recordings.
        validate_every : int, optional
            Steps between validations (default: every step, or every epoch with ``segment``).
        patience : int, optional
            Early stopping: stop after this many validations without a better loss, and
            restore the parameters of the best one.

        Returns
        -------
        streamreg.optim.OptimizeLog
            Loss, wall time and learning rate per step; validation loss and metrics; ``plot()``.

        Raises
        ------
        FloatingPointError
            A non-finite loss or gradient, naming the step and the chunk; the parameters
            and the optimizer are left as they were before that step.

        Notes
        -----
        With ``dt`` the gradient equals the one-shot gradient to float tolerance for any
        Layer, recursive filters included: the forward pass keeps only the state at each
        chunk boundary, the reverse pass recomputes each chunk with autograd and carries
        the state's gradient backwards. Peak memory is one chunk's graph plus one state
        per chunk boundary. The parameters change; the streaming state is reset after.
        """
        from streamreg.optim.optimize import optimize

        return optimize(self, input, target, dt, loss_fn=loss_fn, optimizer=optimizer, n_steps=n_steps,
                        learning_rates=learning_rates, progress=progress, reduction=reduction, truncate=truncate,
                        device=device, recorder=recorder, check_finite=check_finite, mask=mask, trials=trials,
                        segment=segment, batch_segments=batch_segments, epochs=epochs, seed=seed, warmup=warmup,
                        validation=validation, validation_split=validation_split, validate_every=validate_every,
                        patience=patience)


#: Plain torch modules whose per-frame result does not depend on the chunk length.
EXACT_TORCH_MODULES: tuple[type[nn.Module], ...] = (
    nn.Sequential, nn.ModuleList, nn.ModuleDict, nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardtanh,
)


def _module_is_exact(module: nn.Module) -> bool:
    if isinstance(module, Layer):
        return bool(module.bitwise_chunking)
    return type(module) in EXACT_TORCH_MODULES


def module_history(module: nn.Module) -> int | None:
    """Sum of the histories of ``module`` and its sub-modules (``None`` if any is unbounded)."""
    total: int | None = module.own_history if isinstance(module, Layer) else 0
    for child in module.children():
        h = module_history(child)
        if total is None or h is None:
            return None
        total += h
    return total


def _setting_buffers(module: nn.Module) -> list[torch.Tensor]:
    """Buffers that are settings (such as a time constant), not streaming state."""
    found = []
    for m in module.modules():
        state = set(m._state_names) if isinstance(m, Layer) else set()
        found += [b for name, b in m._buffers.items() if b is not None and name not in state]
    return found


def _collect_state(module: nn.Module) -> State:
    out: State = {}
    if isinstance(module, Layer):
        for name in module._state_names:
            value = getattr(module, name)
            out[name] = None if value is None else value.detach().clone()
    for name, child in module.named_children():
        sub = _collect_state(child)
        if sub:
            out[name] = sub
    return out


def _state_schema(module: nn.Module) -> tuple[list[str], dict[str, nn.Module]]:
    own = list(module._state_names) if isinstance(module, Layer) else []
    children = {n: c for n, c in module.named_children() if _has_state(c)}
    return own, children


def _has_state(module: nn.Module) -> bool:
    return any(isinstance(m, Layer) and m._state_names for m in module.modules())


def _apply_state(module: nn.Module, state: Any, path: str, device: torch.device | None) -> None:
    if not isinstance(state, Mapping):
        msg = f"{path} must be a mapping as returned by get_state(); got {type(state).__name__}."
        raise TypeError(msg)
    own, children = _state_schema(module)
    allowed = set(own) | set(children)
    unknown = sorted(set(state) - allowed)
    missing = sorted(allowed - set(state))
    if unknown or missing:
        msg = (
            f"{path} does not match {type(module).__name__}: unknown keys {unknown}, "
            f"missing keys {missing}; expected exactly {sorted(allowed)}."
        )
        raise KeyError(msg)
    for name in own:
        value = state[name]
        if value is not None and not isinstance(value, torch.Tensor):
            msg = f"{path}[{name!r}] must be a tensor or None; got {type(value).__name__}."
            raise TypeError(msg)
        if value is not None:
            value = value.detach().clone() if device is None else value.detach().to(device, copy=True)
        setattr(module, name, value)
    for name, child in children.items():
        _apply_state(child, state[name], f"{path}[{name!r}]", device)
