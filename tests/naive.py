"""Slow, obvious reference versions of every kernel, in float64 NumPy.

Matrix products here use NumPy on purpose: the point is an independent, readable
statement of the math to compare fastbp's explicit loops with.
"""
import numpy as np


def activate(z, name):
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    return z


def derivative_from_output(a, name):
    if name == "sigmoid":
        return a * (1 - a)
    if name == "tanh":
        return 1 - a * a
    if name == "relu":
        return (a > 0).astype(a.dtype)
    return np.ones_like(a)


def dense_forward(x, w, b, act):
    """a = f(x W^T + b), with a triple loop's meaning: z[i, j] = sum_k x[i, k] w[j, k] + b[j]."""
    return activate(x.astype(np.float64) @ w.astype(np.float64).T + b, act)


def output_and_loss(z, y, output):
    """Outputs, mean loss, dL/dz (PyTorch conventions), hits."""
    z = z.astype(np.float64)
    n, k = z.shape
    if output == "softmax":
        labels = y.reshape(-1).astype(int)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        loss = -np.log(p[np.arange(n), labels]).mean()
        onehot = np.zeros_like(p)
        onehot[np.arange(n), labels] = 1
        return p, loss, (p - onehot) / n, float((p.argmax(1) == labels).sum())
    t = y.astype(np.float64).reshape(n, k)
    if output == "sigmoid":
        a = activate(z, "sigmoid")
        with np.errstate(divide="ignore"):
            loss = -(t * np.maximum(np.log(a), -100) + (1 - t) * np.maximum(np.log1p(-a), -100)).mean()
        hits = ((a > 0.5) == (t > 0.5)).mean(axis=1).sum()
        return a, loss, (a - t) / (n * k), float(hits)
    loss = ((z - t) ** 2).mean()
    return z, loss, 2 * (z - t) / (n * k), 0.0


def _splitmix(z):
    """splitmix64's finaliser, on uint64 arrays (wrapping arithmetic)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def dropout_mask(seed, layer, step, b, n, p):
    """The keep mask (b, n) of hidden layer `layer` in step `step` (fastbp/kernels/dropout.py):
    element i*n+j of a splitmix64 stream keyed by (seed, layer, step), its top 53 bits
    compared with round(p 2^53)."""
    g = np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        key = _splitmix(_splitmix(np.uint64(seed)) + np.uint64(layer + 1) * g)
        base = _splitmix(key + np.uint64(step + 1) * g)
        u = _splitmix(base + np.arange(1, b * n + 1, dtype=np.uint64) * g)
    return ((u >> np.uint64(11)) >= np.uint64(round(p * 2.0 ** 53))).reshape(b, n)


def network_gradients(x, y, weights, biases, activation, output, masks=None, rates=None):
    """Forward and backward through the whole network by the chain rule, layer by layer.
    With dropout, masks[l] (b, n_l) keeps units of hidden layer l, scaled by 1 / (1 - rates[l])."""
    acts = [x.astype(np.float64)]
    pre = []                                        # hidden outputs before dropout
    for l, (w, b) in enumerate(zip(weights, biases)):
        act = "identity" if l == len(weights) - 1 else activation
        acts.append(dense_forward(acts[-1], w, b, act))
        if l < len(weights) - 1:
            pre.append(acts[-1])
            if masks is not None:
                acts[-1] = acts[-1] * masks[l] / (1.0 - rates[l])
    out, loss, dz, hits = output_and_loss(acts[-1], y, output)
    dws, dbs = [None] * len(weights), [None] * len(weights)
    for l in range(len(weights) - 1, -1, -1):
        dws[l] = dz.T @ acts[l]                     # dW = dz^T a_in
        dbs[l] = dz.sum(axis=0)                     # db = sum over the batch of dz
        if l > 0:
            da = dz @ weights[l].astype(np.float64)  # da_in = dz W
            dz = da * derivative_from_output(pre[l - 1], activation)
            if masks is not None:
                dz = dz * masks[l - 1] / (1.0 - rates[l - 1])
    return out, loss, dws, dbs, hits


def sgd_step(p, g, buf, lr, momentum=0.0, nesterov=False, weight_decay=0.0, first=False):
    """torch.optim.SGD, one step (dampening 0); returns new p and buf."""
    g = g + weight_decay * p
    if momentum != 0:
        buf = g.copy() if first else momentum * buf + g
        g = g + momentum * buf if nesterov else buf
    return p - lr * g, buf


def adam_step(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay=0.0):
    """torch.optim.Adam, one step (t counts from 1); returns new p, m, v."""
    g = g + weight_decay * p
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat_scale = lr / (1 - beta1 ** t)
    denom = np.sqrt(v) / np.sqrt(1 - beta2 ** t) + eps
    return p - m_hat_scale * m / denom, m, v


def pack_panels(s, w):
    """S (k x n) cut into panels of w columns, zero past column n, each stored row by
    row, one after another: out[(jp * k + p) * w + r] = S[p, jp * w + r] (kernels/gemm.py)."""
    k, n = s.shape
    padded = np.zeros((k, -(-n // w) * w), s.dtype)
    padded[:, :n] = s
    return padded.reshape(k, -1, w).transpose(1, 0, 2).ravel()
