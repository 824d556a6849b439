"""Fit an LN model to three recordings of different lengths, with validation and early stopping.

Run: ``python examples/fit_many_sessions.py [out.png]``; saves the log plot (default ``fit_log.png``).
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from streamreg.models import LN

torch.manual_seed(0)
rng = np.random.default_rng(0)
truth = LN((5, 3, 3), "softplus")
with torch.no_grad():
    truth.conv.weight.normal_()
inputs, targets = [], []
for n in (3000, 2000, 1200):
    x = rng.normal(size=(n, 6, 6)).astype(np.float32)
    truth.reset_state()
    with torch.no_grad():
        y = truth(torch.from_numpy(x)).numpy()
    inputs.append(x)
    targets.append(y + 0.1 * rng.normal(size=y.shape).astype(np.float32))

model = LN((5, 3, 3), "softplus")
model.set_optimizer.Adam(lr=0.05)
log = model.optimize(inputs, targets, 500, segment=200, batch_segments=4, epochs=15, seed=0,
                     validation=0.2, patience=3)
best_r = log.validation_correlation[:, -1].max()
print(f"steps {len(log.loss)}, best after step {log.best_step}, "
      f"validation loss {log.validation_loss.min():.4f}, pooled correlation {best_r:.3f}")
log.plot().savefig(sys.argv[1] if len(sys.argv) > 1 else "fit_log.png")
