"""Kernel timings for one minibatch: forward, loss, backward, the whole train step, one
optimizer update over the flat parameter buffer, and the GEMM of one dense layer.

These call fastbp's internal kernels (fastbp.kernels.*) directly, so they move when a
kernel changes even if the trainer around it hides it.  Internal names may change: each
setup imports what it needs through ``_kernels()``, which turns a missing name into
NotImplementedError, so older commits show "n/a" instead of breaking the whole suite.
tests/test_benchmarks.py treats that as a failure on the current tree.
"""
import numpy as np

import fastbp

from . import common
from .common import DTYPES, SMALL


class _PythonCallable:
    """A kernels module whose kernels Python can call: since kernels compiled for calls
    from compiled code only exist, through fastbp.kernels.python_callable."""

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name):
        value = getattr(self._module, name)
        try:
            from fastbp.kernels import python_callable
        except ImportError:  # pragma: no cover - older commits: every kernel is callable
            return value
        return python_callable(value) if callable(value) and hasattr(value, "py_func") else value


def _kernels():
    try:
        from fastbp.kernels import gemm, loss, optim, step
        return tuple(_PythonCallable(m) for m in (gemm, loss, optim, step))
    except ImportError as exc:  # pragma: no cover - only on commits without these kernels
        raise NotImplementedError(f"kernel layout of this commit differs: {exc}") from None


class _Minibatch(common.ThreadsPinned):
    """One minibatch of a configuration, laid out as the trainer lays it out, with the
    forward pass and the loss gradient already computed (so backward has its inputs)."""

    params = [SMALL, DTYPES]
    param_names = ["config", "dtype"]
    timeout = 120

    def setup(self, config, dtype):
        gemm, loss, optim, step = self.k = _kernels()
        self._pin_threads("all")
        sizes, batch, n = common.config(config)
        model = common.make_model(sizes, dtype)
        X, y = common.make_data(sizes, max(n, batch), dtype)
        common.warm_up(model, X, y, batch)   # compiles train_step and everything it calls
        self.model = model
        self.x = model.check_X(X)
        self.y = model.check_y(y, X.shape[0])
        # shuffled rows, as in a default (shuffle=True) epoch
        self.idx = np.random.default_rng(0).permutation(batch).astype(np.int64)
        self.ws, self.stats = model.workspace(batch)
        self.code = loss.CODES[model.output]
        self.params_ = model.params
        self.grads = model.grads
        self.meta = model.meta
        self.optimizer = fastbp.SGD(lr=1e-3)
        self.state = self.optimizer.bind(model.params)
        self.hyper = np.zeros(optim.HYPER_SIZE, dtype=np.float64)
        self.optimizer.next_hyper(self.hyper)
        # forward and backward take x[idx] packed for dW_0 (the workspace's px, which the
        # forward pass writes and dW_0 reads) where the workspace has one, then gemm's
        # `threaded` where it can be compiled without threads (as the trainer picks it)
        px = getattr(step, "PX", 5)   # the workspace's slot names (kernels/layout.py) since they came in
        self.kept = (self.ws[px],) if len(self.ws) > px else ()
        self.threaded = (step.threading_for(self.meta, batch),) if hasattr(step, "threading_for") else ()
        # forward + loss once, keeping dz = dL/dz of the last layer for backward
        z = step.forward(self.x, self.idx, self.params_, self.meta, self.ws, *self.kept, *self.threaded)
        self.z = z
        self.dz = self.ws[getattr(step, "DZ_A", 1)][: batch * z.shape[1]].reshape((batch, z.shape[1]))
        loss.output_loss(z, self.y, self.idx, self.dz, self.stats, self.code)
        self.dz0 = self.dz.copy()
        # backward takes the minibatch's rows too since a_0 may be read from x in place
        self.rows = (self.x, self.idx) if step.backward.py_func.__code__.co_argcount >= 7 else ()
        # and, since it can run a range of layers (MPI's backward_step), the top and bottom layer
        n_args = step.backward.py_func.__code__.co_argcount
        self.span = (self.meta.shape[0] - 1, 0) if n_args >= 11 else ()
        step.backward(*self.rows, self.params_, self.grads, self.meta, self.ws, self.dz, *self.kept, *self.threaded, *self.span)  # warm
        self.dz[...] = self.dz0


class StepKernels(_Minibatch):
    """Time per minibatch of each phase of ``train_step``, all threads."""

    version = 1

    def time_forward(self, config, dtype):
        self.k[3].forward(self.x, self.idx, self.params_, self.meta, self.ws, *self.kept, *self.threaded)

    def time_loss(self, config, dtype):
        # softmax is applied to z in place; repeated calls stay finite (inputs in [0, 1])
        self.k[1].output_loss(self.z, self.y, self.idx, self.dz, self.stats, self.code)

    def time_backward(self, config, dtype):
        # backward overwrites the buffer dz lives in (ping-pong deltas): restore it first,
        # a (batch x 10) copy, so every call sees the same, realistic input
        self.dz[...] = self.dz0
        self.k[3].backward(*self.rows, self.params_, self.grads, self.meta, self.ws, self.dz, *self.kept, *self.threaded,
                           *self.span)

    def time_train_step(self, config, dtype):
        self.k[3].train_step(self.x, self.y, self.idx, self.params_, self.grads, self.state,
                             self.hyper, self.meta, self.code, self.ws, self.stats, *self.threaded)


class OptimizerStep(common.ThreadsPinned):
    """One optimizer update over the whole flat parameter buffer (all threads)."""

    params = [SMALL, ["sgd", "sgd_momentum", "adam"], DTYPES]
    param_names = ["config", "optimizer", "dtype"]
    timeout = 120
    version = 1

    def setup(self, config, optimizer, dtype):
        gemm, loss, optim, step = _kernels()
        self.update = optim.update
        self._pin_threads("all")
        sizes, _, _ = common.config(config)
        model = common.make_model(sizes, dtype)
        rng = np.random.default_rng(common.SEED)
        self.params_ = model.params.copy()
        self.grads = (1e-3 * rng.standard_normal(self.params_.shape[0])).astype(dtype)
        opt = {"sgd": fastbp.SGD(lr=1e-3),
               "sgd_momentum": fastbp.SGD(lr=1e-3, momentum=0.9, nesterov=True),
               "adam": fastbp.Adam(lr=1e-4)}[optimizer]
        self.state = opt.bind(self.params_)
        self.hyper = np.zeros(optim.HYPER_SIZE, dtype=np.float64)
        opt.next_hyper(self.hyper)
        self.update(self.params_, self.grads, self.state, self.hyper, True)  # compile / load cache

    def time_update(self, config, optimizer, dtype):
        self.update(self.params_, self.grads, self.state, self.hyper, True)


class DenseLayerGemm(common.ThreadsPinned):
    """The forward product of M's first layer, z = f(x W^T + b), x (batch, 784),
    W (256, 784), with its fused bias + sigmoid epilogue; batch 128 (M) and 1024 (MB).
    The loop-shape measurements of docs/performance.md use the batch-1024 shape."""

    params = [[128, 1024], DTYPES, common.THREADS]
    param_names = ["batch", "dtype", "threads"]
    timeout = 120
    version = 1

    def setup(self, batch, dtype, threads):
        gemm, loss, optim, step = _kernels()
        from fastbp.kernels import activations
        self.epi, self.act = gemm.EPI_BIAS_ACT, activations.CODES["sigmoid"]
        self._pin_threads(threads)
        n_in, n_out = (784, 256) if not common.tiny() else (48, 32)
        rng = np.random.default_rng(common.SEED)
        self.a = rng.random((batch, n_in)).astype(dtype)
        self.w = (0.05 * rng.standard_normal((n_out, n_in))).astype(dtype)
        self.bias = np.zeros(n_out, dtype=dtype)
        self.c = np.empty((batch, n_out), dtype=dtype)
        self.flops = 2.0 * batch * n_in * n_out
        if hasattr(gemm, "TO_PACK"):   # named operands: a_rows after a; packs, packed and kept grouped
            pb = np.empty(gemm.packed_size(n_out, n_in, 16), dtype=dtype)
            none, every_row = pb[:0], np.empty(0, np.int64)
            args = (self.a, gemm.AS_IS, every_row, self.w, gemm.TRANSPOSED, self.c, (none, pb),
                    (gemm.TO_PACK, gemm.TO_PACK), self.epi, self.act, self.bias, self.c[:0], (none, none, none),
                    gemm.THREADED)
            self._call = lambda: gemm.gemm(*args)
        elif hasattr(gemm, "gemm"):   # packed outer-product kernel (W^T packed inside the call)
            pb = np.empty(gemm.packed_size(n_out, n_in, 16), dtype=dtype)
            args = (self.a, gemm.AS_IS, self.w, gemm.TRANSPOSED, self.c, pb[:0], pb, self.bias, self.c,
                    self.epi, self.act)
            # the row maps: a_rows and b_rows since they came in, a_rows alone since dW_0's x is
            # packed by the forward; then `threaded` since gemm could be compiled without threads
            threaded = (gemm.THREADED,) if hasattr(gemm, "THREADED") else ()
            args += (np.empty(0, np.int64),) * (gemm.gemm.py_func.__code__.co_argcount - 11 - len(threaded))
            args += threaded
            self._call = lambda: gemm.gemm(*args)
        else:                       # older commits: dot-product kernel on W as stored
            self._call = lambda: gemm.gemm_nt(self.a, self.w, self.c, self.bias, self.c, self.epi, self.act)
        self.time_gemm_nt(batch, dtype, threads)  # compile / load cache

    def time_gemm_nt(self, batch, dtype, threads):
        """Name kept from the dot-product kernel so the dashboard shows one series."""
        self._call()
