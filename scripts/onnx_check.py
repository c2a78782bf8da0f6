"""The digits network's summary() and its ONNX export run by onnxruntime against predict (issue 18)."""
import numpy as np, fastbp, onnxruntime as ort
X, y = fastbp.load_digits()
model = fastbp.MLP([64, 32, 10], activation="relu", dropout=0.1, seed=0)
model.fit(X[:1500], y[:1500], epochs=20, verbose=0,
          optimizer=fastbp.SGD(lr=fastbp.CosineDecay(0.2, epochs=20 * 47, warmup_epochs=47, unit="step"), momentum=0.9))
model.summary()
model.export_onnx("digits.onnx")
sess = ort.InferenceSession("digits.onnx", providers=["CPUExecutionProvider"])
(p_onnx,) = sess.run(None, {"X": X[1500:]})
p = model.predict(X[1500:])
print("onnxruntime vs model.predict: max |diff| =", float(np.abs(p_onnx - p).max()),
      "; same classes:", bool((p_onnx.argmax(1) == model.predict_classes(X[1500:])).all()),
      "; held-out accuracy", model.evaluate(X[1500:], y[1500:])["accuracy"])
