"""The iris classifier's handlers: `predict` answers the species of one flower or of many.

Input (JSON): one record `{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4,
"petal_width": 0.2}` (centimetres), or `{"instances": [record, ...]}`, or a list of four numbers
per flower. `info` answers what the model is and how well it did on held-out data.
"""

import os
import pickle

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "model.pickle"), "rb") as f:
    BUNDLE = pickle.load(f)
MODEL = BUNDLE["model"]
CLASSES = BUNDLE["classes"]
FEATURES = BUNDLE["features"]


def _row(record):
    if isinstance(record, dict):
        missing = [name for name in FEATURES if name not in record]
        if missing:
            raise ValueError(f"missing fields: {', '.join(missing)}")
        return [float(record[name]) for name in FEATURES]
    if isinstance(record, (list, tuple)) and len(record) == len(FEATURES):
        return [float(value) for value in record]
    raise ValueError(f"a flower is an object with {FEATURES} or a list of four numbers")


def _answer(probabilities):
    best = max(range(len(CLASSES)), key=lambda i: probabilities[i])
    return {
        "species": CLASSES[best],
        "probabilities": {
            name: round(float(p), 6) for name, p in zip(CLASSES, probabilities, strict=True)
        },
    }


def predict(payload):
    """Return the species (and each class's probability) of one flower or of `instances`."""
    many = isinstance(payload, dict) and "instances" in payload
    records = payload["instances"] if many else [payload]
    rows = [_row(record) for record in records]
    answers = [_answer(p) for p in MODEL.predict_proba(rows)]
    return {"predictions": answers} if many else answers[0]


def info(payload):
    """Return what the model is, its classes, features and held-out accuracy."""
    return {
        "model": "iris species, logistic regression (scikit-learn)",
        "classes": CLASSES,
        "features": FEATURES,
        "held_out_accuracy": round(float(BUNDLE["accuracy"]), 4),
    }
