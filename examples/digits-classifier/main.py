"""The digits classifier's handler: `predict` reads a handwritten digit from an image.

The input type is `image`: the handler gets the uploaded bytes (PNG, JPEG, anything Pillow
reads). The picture is turned grey, scaled to the 8x8 grid the model was trained on, and its ink
made bright on dark as in the training data (a light background is inverted).
"""

import io
import os
import pickle

from PIL import Image, ImageOps

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "model.pickle"), "rb") as f:
    BUNDLE = pickle.load(f)
MODEL = BUNDLE["model"]


def features(data):
    """Return the 64 pixel values (0-16, ink high) of the image in `data`."""
    image = Image.open(io.BytesIO(data))
    image.load()
    grey = ImageOps.grayscale(image)
    pixels = list(grey.getdata())
    if sum(pixels) / len(pixels) > 127:  # dark ink on a light background
        grey = ImageOps.invert(grey)
    small = grey.resize((8, 8), Image.BOX)
    return [value * 16.0 / 255.0 for value in small.getdata()]


def predict(data):
    """Return the digit, its probability and the image's size."""
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise ValueError("send the image's bytes (input type image)")
    try:
        row = features(bytes(data))
    except OSError as exc:
        raise ValueError(f"not an image Pillow can read: {exc}") from exc
    probabilities = MODEL.predict_proba([row])[0]
    best = max(range(len(probabilities)), key=lambda i: probabilities[i])
    with Image.open(io.BytesIO(data)) as image:
        size = list(image.size)
    return {
        "digit": int(MODEL.classes_[best]),
        "probability": round(float(probabilities[best]), 6),
        "image_size": size,
    }
