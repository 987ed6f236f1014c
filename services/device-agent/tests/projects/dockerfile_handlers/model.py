"""A handlers project whose Dockerfile makes its weights at build time."""

import os


def predict(payload):
    with open("weights.txt") as weights:
        return {"weights": weights.read(), "cwd": os.getcwd(), "echo": payload}
