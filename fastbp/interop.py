"""Leaving fastbp: PyTorch-named state dicts, torch.nn.Sequential models and ONNX graphs.

Layer l of an MLP is ``nn.Linear`` number ``2*l`` of an ``nn.Sequential`` that alternates
Linear and activation modules (the output's Softmax/Sigmoid, or Identity, last), so the
state dict names are ``0.weight``, ``0.bias``, ``2.weight``, ...  A hidden layer with
dropout is followed by an ``nn.Dropout`` too (Linear, activation, Dropout), so the next
Linear is 3 modules on: the names follow ``to_torch``'s module.  Weights are (n_out, n_in)
in both libraries: no transposes.  ONNX graphs are for inference: dropout is left out.
"""
import numpy as np

_TORCH_ACT = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "ReLU", "identity": "Identity"}
_ONNX_ACT = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "identity": None,
             "softmax": "Softmax"}


def _linear_indices(model):
    """Index of each layer's nn.Linear in to_torch's nn.Sequential: after each hidden layer
    its activation and, with dropout, an nn.Dropout."""
    at, out = 0, []
    for p in model.hidden_dropout + [0.0]:
        out.append(at)
        at += 3 if p > 0 else 2
    return out


def state_dict(model):
    """{"0.weight": array (n_out, n_in), "0.bias": array (n_out,), "2.weight": ...}, copies."""
    out = {}
    for k, layer in zip(_linear_indices(model), model.layers):
        out[f"{k}.weight"] = layer.weight.copy()
        out[f"{k}.bias"] = layer.bias.copy()
    return out


def _array(value):
    if hasattr(value, "detach"):   # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def from_state_dict(state, activation="sigmoid", output="softmax", dtype="float32", seed=0, dropout=0.0):
    """An MLP whose layers take the ``k.weight``/``k.bias`` entries of ``state`` in order of k."""
    from .model import MLP
    if not hasattr(state, "keys"):
        raise TypeError(f"state must be a mapping of names to arrays, got {type(state).__name__}")
    keys = sorted({k.rsplit(".", 1)[0] for k in state}, key=lambda k: (len(k), k))
    try:
        keys = sorted(keys, key=int)
    except ValueError:
        raise ValueError(f"state keys must look like '0.weight', '0.bias', got {sorted(state)}") from None
    weights, biases = [], []
    for k in keys:
        if f"{k}.weight" not in state or f"{k}.bias" not in state:
            raise ValueError(f"state has no pair '{k}.weight' and '{k}.bias' (keys {sorted(state)})")
        w, b = _array(state[f"{k}.weight"]), _array(state[f"{k}.bias"])
        if w.ndim != 2 or b.shape != (w.shape[0],):
            raise ValueError(f"state['{k}.weight'] must be (n_out, n_in) and '{k}.bias' (n_out,), "
                             f"got {w.shape} and {b.shape}")
        weights.append(w)
        biases.append(b)
    if not weights:
        raise ValueError("state holds no layers")
    sizes = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    for l in range(1, len(weights)):
        if weights[l].shape[1] != weights[l - 1].shape[0]:
            raise ValueError(f"state['{keys[l]}.weight'] takes {weights[l].shape[1]} inputs, but "
                             f"the layer before gives {weights[l - 1].shape[0]}")
    model = MLP(sizes, activation=activation, output=output, dtype=dtype, seed=seed, dropout=dropout)
    for layer, w, b in zip(model.layers, weights, biases):
        layer.weight, layer.bias = w, b
    return model


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError("to_torch/from_torch need PyTorch: pip install 'fastbp[interop]'") from None
    return torch


def _first_layer_on_raw_inputs(model):
    """The first layer's (weight, bias) acting on raw features: a model with a stored input
    scaling (``fastbp train --standardize``) has it folded in, W' = W / std and
    b' = b - W' mean, computed in float64; otherwise the layer's own arrays."""
    layer = model.layers[0]
    if model.input_mean is None:
        return layer.weight.copy(), layer.bias.copy()
    w = layer.weight.astype(np.float64) / np.asarray(model.input_std, dtype=np.float64)
    b = layer.bias - np.sum(w * np.asarray(model.input_mean, dtype=np.float64), axis=1)
    return w.astype(model.dtype), b.astype(model.dtype)


def to_torch(model):
    """A torch.nn.Sequential (Linear, activation, ..., Linear, Softmax(dim=1)|Sigmoid|Identity)
    that computes what ``model.predict`` does, in the model's dtype (a stored input scaling
    folded into the first Linear layer)."""
    torch = _torch()
    nn = torch.nn
    mods = []
    for l, layer in enumerate(model.layers):
        lin = nn.Linear(layer.n_in, layer.n_out, dtype=getattr(torch, model.dtype.name))
        weight, bias = _first_layer_on_raw_inputs(model) if l == 0 else (layer.weight, layer.bias)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(weight.copy()))
            lin.bias.copy_(torch.from_numpy(bias.copy()))
        mods.append(lin)
        if l < len(model.layers) - 1:
            mods.append(getattr(nn, _TORCH_ACT[layer.activation])())
            if model.hidden_dropout[l] > 0:
                mods.append(nn.Dropout(model.hidden_dropout[l]))
        else:
            mods.append(nn.Softmax(dim=1) if model.output == "softmax"
                        else getattr(nn, _TORCH_ACT[model.output])())
    return nn.Sequential(*mods)


def from_torch(module, output=None, seed=0):
    """An MLP from an nn.Sequential of Linear layers, each followed by at most one of
    Sigmoid/Tanh/ReLU/Identity (hidden, then optionally an nn.Dropout, whose p becomes the
    layer's dropout) or Softmax/Sigmoid/Identity (last).  ``output``
    defaults to what the last module says ("identity" when nothing follows the last Linear)."""
    torch = _torch()
    nn = torch.nn
    if not isinstance(module, nn.Sequential):
        raise TypeError(f"module must be a torch.nn.Sequential, got {type(module).__name__}")
    names = {nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.ReLU: "relu", nn.Identity: "identity"}
    linears, acts, drops = [], [], []
    for i, m in enumerate(module):
        if isinstance(m, nn.Linear):
            if len(acts) < len(linears):
                acts.append("identity")
            linears.append(m)
            drops.append(0.0)
        elif isinstance(m, nn.Dropout):   # after a hidden layer (and its activation, if any)
            if not linears or drops[-1]:
                raise ValueError(f"module[{i}] (Dropout) must follow a Linear layer or its activation, "
                                 "once")
            if len(acts) < len(linears):
                acts.append("identity")
            drops[-1] = float(m.p)
        elif type(m) in names or isinstance(m, nn.Softmax):
            if len(acts) != len(linears) - 1:
                raise ValueError(f"module[{i}] ({type(m).__name__}) does not follow a Linear layer")
            acts.append("softmax" if isinstance(m, nn.Softmax) else names[type(m)])
        else:
            raise ValueError(f"module[{i}] is a {type(m).__name__}; fastbp takes Linear, Sigmoid, "
                             "Tanh, ReLU, Identity, Dropout and a final Softmax")
    if not linears:
        raise ValueError("module holds no Linear layer")
    if len(acts) < len(linears):
        acts.append("identity")
    if "softmax" in acts[:-1]:
        raise ValueError("Softmax is only supported after the last Linear layer")
    if any(m.bias is None for m in linears):
        raise ValueError("every Linear layer needs a bias (bias=True)")
    out = output if output is not None else acts[-1]
    dtype = linears[0].weight.dtype
    dtype = {torch.float32: "float32", torch.float64: "float64"}.get(dtype)
    if dtype is None:
        raise ValueError(f"weights must be float32 or float64, got {linears[0].weight.dtype}")
    state = {}
    for l, m in enumerate(linears):
        state[f"{2 * l}.weight"], state[f"{2 * l}.bias"] = m.weight, m.bias
    hidden = acts[:-1]
    if drops[-1]:
        raise ValueError("Dropout after the last Linear layer is not supported (dropout is on hidden layers)")
    return from_state_dict(state, activation=hidden if hidden else "sigmoid", output=out,
                           dtype=dtype, seed=seed, dropout=drops[:-1] if any(drops) else 0.0)


def export_onnx(model, path, opset=17):
    """Write an ONNX graph (Gemm + activations + Softmax/Sigmoid) computing ``model.predict``:
    input "X" (batch, n_in), output "Y" (batch, n_out), in the model's dtype.  A stored input
    scaling (``fastbp train --standardize``) becomes Sub and Div nodes in front."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise ImportError("export_onnx needs the onnx package: pip install 'fastbp[interop]'") from None
    elem = TensorProto.FLOAT if model.dtype == np.float32 else TensorProto.DOUBLE
    nodes, inits, prev = [], [], "X"
    if model.input_mean is not None:
        inits += [numpy_helper.from_array(np.asarray(model.input_mean, model.dtype), "input_mean"),
                  numpy_helper.from_array(np.asarray(model.input_std, model.dtype), "input_std")]
        nodes += [helper.make_node("Sub", ["X", "input_mean"], ["x_centred"]),
                  helper.make_node("Div", ["x_centred", "input_std"], ["x_scaled"])]
        prev = "x_scaled"
    n_layers = len(model.layers)
    for l, layer in enumerate(model.layers):
        w, b = f"{2 * l}.weight", f"{2 * l}.bias"
        inits += [numpy_helper.from_array(layer.weight.copy(), w),
                  numpy_helper.from_array(layer.bias.copy(), b)]
        act = model.output if l == n_layers - 1 else layer.activation
        op = _ONNX_ACT[act]
        z = f"z{l}" if op is not None or l < n_layers - 1 else "Y"
        nodes.append(helper.make_node("Gemm", [prev, w, b], [z], transB=1))  # x W^T + b
        prev = z
        if op is not None:
            a = "Y" if l == n_layers - 1 else f"a{l}"
            kw = {"axis": 1} if op == "Softmax" else {}
            nodes.append(helper.make_node(op, [z], [a], **kw))
            prev = a
    graph = helper.make_graph(nodes, "fastbp_mlp", [helper.make_tensor_value_info("X", elem, [None, model.sizes[0]])],
                              [helper.make_tensor_value_info("Y", elem, [None, model.sizes[-1]])], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="fastbp")
    proto.ir_version = min(proto.ir_version, 9)  # readable by onnxruntime releases of the last years
    onnx.checker.check_model(proto)
    from .io import atomic_write
    atomic_write(path, lambda f: f.write(proto.SerializeToString()))
    return path
