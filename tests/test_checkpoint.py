"""Checkpoints: five epochs, stop, resume for five == ten epochs straight, bit for bit."""
import numpy as np
import pytest

import fastbp


@pytest.fixture(scope="module")
def data():
    X, y = fastbp.load_digits()
    return X[:500], y[:500]


def _model():
    return fastbp.MLP([64, 24, 10], activation="tanh", seed=7)


@pytest.mark.parametrize("make_opt", [
    lambda: fastbp.SGD(lr=0.1, momentum=0.9, nesterov=True),
    lambda: fastbp.Adam(lr=0.01),
    # a per-step schedule (16 steps an epoch: warm-up, cosine down to step 100, held after)
    lambda: fastbp.SGD(lr=fastbp.CosineDecay(0.1, epochs=100, warmup_epochs=20, min_lr=0.01, unit="step"),
                       momentum=0.9),
])
@pytest.mark.parametrize("split", [0.0, 0.2])
def test_resume_is_bit_identical(tmp_path, data, make_opt, split):
    X, y = data
    straight = _model()
    h_straight = straight.fit(X, y, epochs=10, batch_size=32, optimizer=make_opt(),
                              validation_split=split, verbose=0)

    ckpt = tmp_path / "run.ckpt.npz"
    first = _model()
    first.fit(X, y, epochs=5, batch_size=32, optimizer=make_opt(), validation_split=split,
              verbose=0, checkpoint=ckpt, checkpoint_every=5)
    del first                                            # "stop": a new process would start here
    resumed = fastbp.MLP([64, 24, 10], activation="tanh", seed=123)   # other seed: all restored
    h_resumed = resumed.fit(X, y, epochs=10, batch_size=32, optimizer=make_opt(),
                            validation_split=split, verbose=0, resume=ckpt)

    assert np.array_equal(resumed.params, straight.params)
    assert np.array_equal(resumed.optimizer.state, straight.optimizer.state)
    assert resumed.optimizer.steps == straight.optimizer.steps
    assert h_resumed.epoch == list(range(10))
    assert h_resumed.history["loss"] == h_straight.history["loss"]
    if split:
        assert h_resumed.history["val_loss"] == h_straight.history["val_loss"]
    assert resumed.epoch == 10


def test_checkpoint_every_and_contents(tmp_path, data):
    X, y = data
    ckpt = tmp_path / "c.npz"
    model = _model()
    saved = []
    cb = fastbp.LambdaCallback(on_epoch_end=lambda e, logs: saved.append(
        ckpt.exists() and fastbp.files.read_checkpoint(ckpt)[1]["epoch"]))
    model.fit(X, y, epochs=5, optimizer="sgd", verbose=0, checkpoint=ckpt, checkpoint_every=2,
              callbacks=[cb])
    # callbacks run before the checkpoint of their epoch is written
    assert saved == [False, False, 2, 2, 4]
    again, training = fastbp.files.read_checkpoint(ckpt)
    assert training["epoch"] == 5 and training["epochs"] == 5
    assert np.array_equal(again.params, model.params)
    assert again.rng.bit_generator.state == model.rng.bit_generator.state
    assert isinstance(fastbp.load(ckpt), fastbp.MLP)         # a checkpoint is a model file too
    assert not list(tmp_path.glob(".fastbp-*"))                # no temporary files left behind


def test_resume_refuses_mismatches(tmp_path, data):
    X, y = data
    ckpt = tmp_path / "c.npz"
    _model().fit(X, y, epochs=2, optimizer=fastbp.SGD(lr=0.1), verbose=0, checkpoint=ckpt)
    with pytest.raises(ValueError, match="holds a model"):
        fastbp.MLP([64, 25, 10], activation="tanh").fit(X, y, epochs=4, resume=ckpt, verbose=0)
    with pytest.raises(ValueError, match="differs from the checkpoint"):
        _model().fit(X, y, epochs=4, optimizer=fastbp.SGD(lr=0.2), resume=ckpt, verbose=0)
    with pytest.raises(ValueError, match="at epoch 2"):
        _model().fit(X, y, epochs=1, resume=ckpt, verbose=0)
    with pytest.raises(ValueError, match="checkpoint_every"):
        _model().fit(X, y, epochs=1, checkpoint=ckpt, checkpoint_every=0, verbose=0)
    plain = tmp_path / "plain.npz"
    _model().save(plain)
    with pytest.raises(fastbp.ModelFileError, match="not a training checkpoint"):
        _model().fit(X, y, epochs=4, resume=plain, verbose=0)


def _run_with_callbacks(X, y, epochs, make_callbacks, **kw):
    model = _model()
    callbacks = make_callbacks()
    seen = []    # per epoch: the lr it ended with and the plateau callback's count
    spy = fastbp.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(
        (model.optimizer.lr, getattr(callbacks[0], "wait", None))))
    history = model.fit(X, y, epochs=epochs, batch_size=32, optimizer=fastbp.SGD(lr=0.1, momentum=0.9),
                        verbose=0, callbacks=callbacks + [spy], **kw)
    return model, history, seen


@pytest.mark.parametrize("make_callbacks", [
    # lowers the lr when the loss improves by less than 0.2 for 2 epochs (in epochs 5, 7, 10)
    lambda: [fastbp.ReduceLROnPlateau("loss", factor=0.5, patience=2, min_delta=0.2),
             fastbp.EarlyStopping("loss", patience=50, min_delta=0.2)],
    lambda: [fastbp.LearningRateScheduler(fastbp.StepDecay(0.2, step_size=3, factor=0.5))],
], ids=["plateau", "scheduler"])
def test_resume_keeps_callback_state_and_schedules(tmp_path, data, make_callbacks):
    """The resumed fit gets the same optimizer and callbacks as the first: the checkpoint's lr
    (lowered or scheduled since) and the callbacks' counters carry on, bit for bit."""
    X, y = data
    straight, h_straight, seen = _run_with_callbacks(X, y, 10, make_callbacks)
    lrs = [lr for lr, _ in seen]
    assert len(set(lrs[:6])) > 1 and len(set(lrs[6:])) > 1          # the lr changes in both parts
    if seen[5][1] is not None:
        assert seen[5][1] > 0             # a count under way at the interruption: it must be kept
    ckpt = tmp_path / "cb.npz"
    _run_with_callbacks(X, y, 6, make_callbacks, checkpoint=ckpt)
    training = fastbp.files.read_checkpoint(ckpt)[1]
    assert training["optimizer_start"]["lr"] == 0.1
    assert [c["class"] for c in training["callbacks"]] == [type(cb).__name__ for cb in make_callbacks()]
    resumed, h_resumed, seen_after = _run_with_callbacks(X, y, 10, make_callbacks, resume=ckpt)
    assert seen_after == seen[6:]
    assert h_resumed.history["loss"] == h_straight.history["loss"]
    np.testing.assert_array_equal(resumed.params, straight.params)


def test_resume_refuses_another_epoch_schedule(tmp_path, data):
    X, y = data
    ckpt = tmp_path / "s.npz"
    _model().fit(X, y, epochs=2, verbose=0, checkpoint=ckpt,
                 callbacks=[fastbp.LearningRateScheduler(fastbp.StepDecay(0.2, step_size=3))])
    with pytest.raises(ValueError, match="LearningRateScheduler's schedule .* differs from the checkpoint's"):
        _model().fit(X, y, epochs=4, verbose=0, resume=ckpt,
                     callbacks=[fastbp.LearningRateScheduler(fastbp.StepDecay(0.2, step_size=4))])
