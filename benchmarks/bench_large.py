"""Training throughput on configurations L and XL (docs/benchmarks.md): minutes, not seconds.

Kept in a module of its own so a quick run can skip it:
    asv run --quick --bench '^(?!bench_large)' ...
"""
import time

from . import common
from .common import DTYPES, LARGE, THREADS


class TrainThroughputLarge(common.ThreadsPinned):
    """Samples per second of ``model.fit`` over one epoch (one epoch timed: XL takes
    seconds per epoch on 2 cores, so one is plenty to be stable)."""

    params = [LARGE, DTYPES, THREADS]
    param_names = ["config", "dtype", "threads"]
    unit = "samples/s"
    timeout = 600
    version = 1

    def setup(self, config, dtype, threads):
        self._setup_training(config, dtype, threads)

    def track_samples_per_second(self, config, dtype, threads):
        t0 = time.perf_counter()
        self.model.fit(self.X, self.y, epochs=1, batch_size=self.batch, optimizer=self.optimizer,
                       shuffle=True, verbose=0, n_threads=self.n_threads)
        return self.X.shape[0] / (time.perf_counter() - t0)
