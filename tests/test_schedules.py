"""Per-step learning-rate schedules: a schedule with unit="step" as the optimizer's lr is
evaluated inside the compiled loop, bit for bit as Python evaluates it step by step, however
the steps are grouped into compiled calls; and it survives checkpoints."""
import json

import numpy as np
import pytest

import fastbp
from fastbp import _epoch, optimizers
from fastbp.kernels.optim import HYPER_SIZE
from fastbp.kernels.step import threading_for, train_steps

N, BATCH, EPOCHS = 96, 8, 2      # 12 steps an epoch, 24 in all

SCHEDULES = {
    "step": lambda: fastbp.StepDecay(0.2, step_size=5, factor=0.5, unit="step"),
    "exponential": lambda: fastbp.ExponentialDecay(0.1, 0.93, unit="step"),
    # 4 steps of warm-up, cosine down to step 20, then held at min_lr
    "cosine": lambda: fastbp.CosineDecay(0.1, epochs=20, warmup_epochs=4, min_lr=0.01, unit="step"),
}
OPTIMIZERS = {
    "sgd": lambda lr: fastbp.SGD(lr=lr, momentum=0.9, nesterov=True),
    "adam": lambda lr: fastbp.Adam(lr=lr),
}


@pytest.fixture(scope="module")
def data():
    X, y = fastbp.load_digits()
    return X[:N], y[:N]


def _model():
    return fastbp.MLP([64, 12, 10], activation="tanh", seed=5)


def _python_loop(X, y, make_schedule, make_opt):
    """The reference: one compiled call per step, each with a constant lr that Python
    computes from the schedule at the step count."""
    model = _model()
    schedule = make_schedule()
    opt = make_opt(1.0)
    state = opt.bind(model.params)
    Xc, yc = model.check_X(X), model.check_y(y, N)
    ws, stats = model.workspace(BATCH)
    hyper = np.zeros(HYPER_SIZE)
    order = np.arange(N, dtype=np.int64)            # fit(shuffle=False)
    lrs = []
    for _ in range(EPOCHS):
        for s in range(0, N, BATCH):
            opt.lr = float(schedule(opt.steps))
            lrs.append(opt.lr)
            opt.set_hyper(hyper)
            train_steps(Xc, yc, order, s, s + BATCH, BATCH, model.params, model.grads, state, hyper,
                        model.meta, model._out_code, ws, stats, np.zeros(1), True,
                        threading_for(model.meta, BATCH))
            opt.sync(hyper)
    return model, lrs


def _fit(X, y, make_schedule, make_opt, seconds, monkeypatch):
    monkeypatch.setattr(_epoch, "SECONDS_PER_CALL", seconds)
    model = _model()
    model.fit(X, y, epochs=EPOCHS, batch_size=BATCH, optimizer=make_opt(make_schedule()), shuffle=False,
              verbose=0)
    return model


@pytest.mark.parametrize("opt_name", OPTIMIZERS)
@pytest.mark.parametrize("name", SCHEDULES)
def test_compiled_schedule_equals_python_step_by_step(data, name, opt_name, monkeypatch):
    X, y = data
    make_schedule, make_opt = SCHEDULES[name], OPTIMIZERS[opt_name]
    ref, lrs = _python_loop(X, y, make_schedule, make_opt)
    assert len(set(lrs)) > 3                                  # the lr did change along the way
    one = _fit(X, y, make_schedule, make_opt, 1e-12, monkeypatch)    # one step per compiled call
    many = _fit(X, y, make_schedule, make_opt, 1e6, monkeypatch)     # every step of an epoch in one
    np.testing.assert_array_equal(one.params, ref.params)
    np.testing.assert_array_equal(many.params, ref.params)
    assert one.optimizer.steps == many.optimizer.steps == EPOCHS * N // BATCH
    assert one.optimizer.current_lr == make_schedule()(EPOCHS * N // BATCH)
    # a constant lr gives other weights: the schedule is not ignored
    const = _model()
    const.fit(X, y, epochs=EPOCHS, batch_size=BATCH, optimizer=make_opt(lrs[0]), shuffle=False, verbose=0)
    assert not np.array_equal(const.params, ref.params)


def test_schedule_values():
    c = SCHEDULES["cosine"]()
    assert c(0) == pytest.approx(0.1 / 5) and c(3) == pytest.approx(0.1 * 4 / 5) and c(4) == 0.1
    assert c(20) == c(1000) == pytest.approx(0.01)
    s = SCHEDULES["step"]()
    assert [s(t) for t in (0, 4, 5, 10)] == [0.2, 0.2, 0.1, 0.05]


def test_optimizer_config_with_a_schedule_is_plain_json():
    opt = fastbp.Adam(lr=SCHEDULES["cosine"]())
    config = json.loads(json.dumps(opt.get_config()))
    assert config["lr"] == {"name": "cosine_decay", "initial_lr": 0.1, "epochs": 20, "warmup_epochs": 4,
                            "min_lr": 0.01, "unit": "step"}
    again = optimizers.get(config)
    assert again.lr == opt.lr and again.get_config() == opt.get_config()
    assert "CosineDecay(initial_lr=0.1" in repr(opt)


def test_misuse_is_refused(data):
    X, y = data
    with pytest.raises(ValueError, match="counts epochs.*unit='step'"):
        fastbp.SGD(lr=fastbp.CosineDecay(0.1, epochs=10))
    with pytest.raises(ValueError, match="counts steps: pass it as the optimizer's lr"):
        fastbp.LearningRateScheduler(SCHEDULES["step"]())
    with pytest.raises(ValueError, match="unit must be 'epoch' or 'step'"):
        fastbp.ExponentialDecay(0.1, 0.9, unit="batch")
    with pytest.raises(ValueError, match="a schedule config needs 'name'"):
        fastbp.SGD(lr={"name": "linear"})
    plateau = fastbp.ReduceLROnPlateau("loss", patience=0, min_delta=10.0)
    with pytest.raises(TypeError, match="ReduceLROnPlateau: the optimizer's lr is a schedule"):
        _model().fit(X, y, epochs=2, optimizer=fastbp.SGD(lr=SCHEDULES["step"]()), callbacks=[plateau],
                     verbose=0)
