"""Private: the streaming state at every chunk boundary, for the exact chunked gradient."""

from __future__ import annotations

from torch import Tensor, nn

from streamreg.layer import Layer

__all__ = ["StateBank", "leaf", "read_slots", "snapshot", "state_slots", "write_slots"]

Slot = tuple[nn.Module, str]


def state_slots(layer: nn.Module) -> list[Slot]:
    return [(m, name) for m in layer.modules() if isinstance(m, Layer) for name in m.state_names]


def read_slots(slots: list[Slot]) -> list[Tensor | None]:
    return [getattr(m, name) for m, name in slots]


def write_slots(slots: list[Slot], values: list[Tensor | None]) -> None:
    for (m, name), value in zip(slots, values, strict=True):
        setattr(m, name, value)


def snapshot(values: list[Tensor | None]) -> list[Tensor | None]:
    return [None if v is None else v.detach().clone() for v in values]


class StateBank:
    """The streaming state at every chunk boundary, one preallocated block per state tensor.

    Keeping the snapshots in one allocation each (rather than one small tensor per
    chunk, allocated between chunk-sized buffers) stops the C allocator from
    fragmenting its heap, which otherwise grows the process by about one chunk's
    worth of memory every few chunks. A state whose shape or dtype changes between
    chunks (a history that fills up, say) falls back to one copy per chunk.
    """

    def __init__(self, n_slots: int, n_chunks: int) -> None:
        self.n_chunks = n_chunks
        self.blocks: list[Tensor | None] = [None] * n_slots
        self.loose: list[dict[int, Tensor] | None] = [None] * n_slots  # per-chunk copies, after a change
        self.fresh: list[set[int]] = [set() for _ in range(n_slots)]  # chunks whose state was None

    def store(self, k: int, values: list[Tensor | None]) -> None:
        for i, v in enumerate(values):
            if v is None:
                self.fresh[i].add(k)
                continue
            v = v.detach()
            block, loose = self.blocks[i], self.loose[i]
            if loose is None and block is None:
                block = self.blocks[i] = v.new_empty((self.n_chunks, *v.shape))
            if loose is None and (block.shape[1:] != v.shape or block.dtype != v.dtype):
                loose = self.loose[i] = {j: block[j].clone() for j in range(k) if j not in self.fresh[i]}
                self.blocks[i] = None
            if loose is not None:
                loose[k] = v.clone()
            else:
                block[k].copy_(v)

    def view(self, k: int) -> list[Tensor | None]:
        """The states at the start of chunk ``k``, as views of the bank (copy before changing them)."""
        out: list[Tensor | None] = []
        for i, (block, loose) in enumerate(zip(self.blocks, self.loose, strict=True)):
            if k in self.fresh[i]:
                out.append(None)
            else:
                out.append(loose[k] if loose is not None else block[k])
        return out


def leaf(value: Tensor | None) -> Tensor | None:
    """A floating ``value`` as a new autograd leaf sharing its memory; other values unchanged."""
    if value is None or not value.is_floating_point():
        return value
    return value.detach().requires_grad_()
