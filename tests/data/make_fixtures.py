"""Write the model files in tests/data/, with what the writing code predicted from them.

These files were written by fastbp at commit 9b8f178 (main before issue 19 made io.py
format-only), so tests/test_file_compat.py proves that files of that version keep loading
with the same weights, fields and predictions.  Rerunning this script writes files of the
current version: keep the committed ones unless the format changes on purpose (then add
new files next to them, never replace the old ones).

    python tests/data/make_fixtures.py [folder]

Each ``<name>.npz`` has a ``<name>.expected.npz`` next to it (plain arrays) holding the
inputs ``X``, the writer's ``params`` and its outputs on ``X`` (``predict``, and for the
classifiers ``predict_proba``), and ``<name>.expected.json`` with the fields a load must
give back.  Networks are tiny (4 inputs, 3 hidden units) so each file is a few KB.
"""
import json
import os
import sys
import warnings

import numpy as np

import fastbp
from fastbp.callbacks import EarlyStopping


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5)     # 3 classes
    return X, y


def _expected(folder, name, X, params, fields, **outputs):
    np.savez(os.path.join(folder, name + ".expected.npz"), X=X, params=params, **outputs)
    with open(os.path.join(folder, name + ".expected.json"), "w") as f:
        json.dump(fields, f, indent=1, sort_keys=True)
        f.write("\n")


def _mlp_fields(model):
    opt = model.optimizer
    return {"config": model.get_config(), "epoch": model.epoch,
            "dropout_seed": model.dropout_seed, "rng_state": model.rng.bit_generator.state,
            "optimizer": None if opt is None else dict(opt.get_config(), steps=opt.steps)}


def main(folder):
    X, y = _data()
    X32 = X.astype(np.float32)

    # an MLP with Adam after a short fit, written by MLP.save
    m = fastbp.MLP([4, 3, 3], seed=1)
    m.fit(X32, y, epochs=2, batch_size=8, optimizer=fastbp.Adam(lr=0.01), verbose=0)
    m.save(os.path.join(folder, "mlp_adam.npz"))
    _expected(folder, "mlp_adam", X32, m.params, _mlp_fields(m), predict=m.predict(X32),
              optimizer_state=m.optimizer.state)

    # an MLP carrying what `fastbp train` stores (labels, input scaling, held-out rows),
    # written by fastbp.save's twin MLP.save, without an optimizer
    m = fastbp.MLP([4, 3, 3], activation="tanh", dtype="float64", seed=None)
    m.classes_ = np.array([10, 20, 30])
    m.input_mean = X.mean(axis=0)
    m.input_std = X.std(axis=0)
    m.held_out_rows = np.array([1, 5, 7], dtype=np.int64)
    m.save(os.path.join(folder, "mlp_cli.npz"))
    fields = _mlp_fields(m)
    fields["classes_"] = m.classes_.tolist()
    _expected(folder, "mlp_cli", X, m.params, fields, predict=m.predict(X),
              input_mean=m.input_mean, input_std=m.input_std, held_out_rows=m.held_out_rows)

    # a checkpoint written by fit(checkpoint=...): SGD with momentum, a callback's state
    m = fastbp.MLP([4, 3, 2], output="sigmoid", seed=2, dropout=0.25)
    path = os.path.join(folder, "checkpoint.npz")
    yb = np.stack([y == 0, y == 2], axis=1).astype(np.float32)
    m.fit(X32, yb, epochs=3, batch_size=8, optimizer=fastbp.SGD(lr=0.1, momentum=0.9),
          checkpoint=path, callbacks=[EarlyStopping(patience=5, monitor="loss")], verbose=0)
    fields = _mlp_fields(m)
    fields["history"] = {"epoch": m.history.epoch, "history": m.history.history}
    _expected(folder, "checkpoint", X32, m.params, fields, predict=m.predict(X32),
              optimizer_state=m.optimizer.state)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # ConvergenceWarning of the short fits
        ests = {
            "clf_sgd": fastbp.MLPClassifier(hidden_layer_sizes=(3,), solver="sgd", momentum=0.9,
                                            learning_rate="invscaling", max_iter=3,
                                            batch_size=8, random_state=0).fit(X, y),
            "reg_adam": fastbp.MLPRegressor(hidden_layer_sizes=(3,), solver="adam", max_iter=3,
                                            batch_size=8, random_state=0)
            .fit(X, np.stack([X[:, 0] - X[:, 1], X[:, 2]], axis=1)),
            "clf_strings": fastbp.MLPClassifier(hidden_layer_sizes=(3,), max_iter=3, batch_size=8,
                                                random_state=0)
            .fit(X, np.where(y > 0, "dog", "cat")),
        }
    for name, est in ests.items():
        est.save(os.path.join(folder, name + ".npz"))
        fields = {"class": type(est).__name__, "params": est.get_params(),
                  "n_iter_": est.n_iter_, "t_": est.t_, "loss_curve_": est.loss_curve_,
                  "optimizer": dict(est._optimizer.get_config(), steps=est._optimizer.steps,
                                    scale=est._optimizer.scale)}
        outputs = {"predict": est.predict(X), "optimizer_state": est._optimizer.state}
        if hasattr(est, "classes_"):
            fields["classes_"] = est.classes_.tolist()
            outputs["predict_proba"] = est.predict_proba(X)
        fields["params"]["hidden_layer_sizes"] = list(fields["params"]["hidden_layer_sizes"])
        _expected(folder, name, X, est.model_.params, fields, **outputs)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
