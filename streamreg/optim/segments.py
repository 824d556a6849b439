"""Private: random mini-batches of segments for stochastic fitting (``optimize(segment=...)``)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from streamreg.optim.objective import Span

__all__ = ["SegmentSampler", "Tile", "segment_spans", "tile"]

#: ``(recording, first frame, end frame)`` of one segment's loss frames.
Tile = tuple[int, int, int]


def tile(ranges: list[Tile], length: int) -> list[Tile]:
    """Cut every range ``(r, a, b)`` into consecutive segments of ``length`` frames (the last may be shorter)."""
    return [(r, s, min(s + length, b)) for r, a, b in ranges for s in range(a, b, length)]


def segment_spans(tiles: list[Tile], warm: int) -> list[Span]:
    """Each segment, preceded by ``warm`` frames of warm-up (fewer at the start of a recording)."""
    return [Span(r, max(0, s - warm), s, e) for r, s, e in tiles]


class SegmentSampler:
    """Shuffle all segments once per epoch (seeded) and hand them out ``batch`` at a time.

    Within an epoch every segment is drawn exactly once (without replacement); the
    last batch of an epoch may be smaller.
    """

    def __init__(self, tiles: list[Tile], batch: int, seed: int | None) -> None:
        self.tiles, self.batch = tiles, batch
        self.rng = np.random.default_rng(seed)

    @property
    def steps_per_epoch(self) -> int:
        return -(-len(self.tiles) // self.batch)

    def batches(self, epochs: int) -> Iterator[list[Tile]]:
        """Yield ``epochs * steps_per_epoch`` batches of segments."""
        for _ in range(epochs):
            order = self.rng.permutation(len(self.tiles))
            for i in range(0, len(order), self.batch):
                yield [self.tiles[j] for j in order[i:i + self.batch]]
