"""Private: the machinery behind ``Layer.run`` and :class:`streamreg.Runner`, one concept per module.

Read it top-down:

* :mod:`.options` -- the validated, frozen options of one call (:class:`RunOptions`);
* :mod:`.endpoints` -- every accepted input and output form as a stream;
* :mod:`.plan` -- chunk length, frame range, device and dtype (:class:`Plan`);
* :mod:`.progress` -- positions and counters while the run goes (:class:`Progress`);
* :mod:`.fingerprint` -- what identifies a model and an input for resume;
* :mod:`.checkpoint` -- the checkpoint policy: lock, refuse, restore, save, finish;
* :mod:`.loop` -- the one chunk loop with its I/O thread;
* :mod:`.job` -- prepare a run, execute it, release it.

Nothing here imports :mod:`streamreg.layer`; ``Layer.run`` imports this package lazily.
"""

from streamreg._run.job import Job, prepare_job, run_layer
from streamreg._run.options import RunOptions

__all__ = ["Job", "RunOptions", "prepare_job", "run_layer"]
