"""Iris: a scikit-learn classifier served by clipper_worker.

setup() trains a logistic regression on the iris data set scikit-learn
ships (no download) when the worker starts, before it registers; predict()
answers each input (4 doubles: sepal length, sepal width, petal length,
petal width, in cm) with the species name.

    clipper models deploy iris --version 1 --input-type doubles --python examples/iris/model.py
    clipper apps create iris --input-type doubles && clipper link iris iris
    curl -s -X POST localhost:1337/v1/apps/iris:predict -d '{"input":{"doubles":[5.1,3.5,1.4,0.2]}}'

Needs Debian's python3-sklearn.
"""
import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

FEATURES = 4

_model = None
_names = None
_predicted = None


def setup(runtime):
    global _model, _names, _predicted
    data = load_iris()
    _model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(data.data, data.target)
    _names = [str(n) for n in data.target_names]
    _predicted = runtime.metrics.counter("predictions_total", "Predictions by species", label_names=["species"])
    runtime.log.info("iris model trained", samples=len(data.data), accuracy=round(float(_model.score(data.data, data.target)), 4))


def predict(inputs):
    # One call for the whole batch: scikit-learn's cost is per call, not per row.
    ok = [len(x) == FEATURES for x in inputs]
    rows = np.array([x for x, good in zip(inputs, ok) if good], dtype=np.float64).reshape(-1, FEATURES)
    classes = iter(_model.predict(rows)) if len(rows) else iter(())
    out = []
    for good in ok:
        if not good:
            err = ValueError(f"an iris is {FEATURES} doubles: sepal length, sepal width, petal length, petal width (cm)")
            err.code = 3  # INVALID_ARGUMENT, for this item only
            out.append(err)
            continue
        name = _names[int(next(classes))]
        _predicted.inc(labels={"species": name})
        out.append(name)
    return out
