"""Train the digits classifier on the 8x8 digits scikit-learn ships and save it (image build).

`python3 train.py model.pickle` trains; `python3 train.py --samples DIR` writes one PNG per digit
(held-out images, scaled up to 32x32, dark ink on white) for trying the model out.
"""

import os
import pickle
import sys

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC


def split():
    digits = load_digits()
    return train_test_split(
        digits.data, digits.target, test_size=0.25, random_state=0, stratify=digits.target
    )


def train(target):
    train_x, test_x, train_y, test_y = split()
    model = SVC(gamma=0.001, C=10, probability=True, random_state=0)
    model.fit(train_x, train_y)
    accuracy = model.score(test_x, test_y)
    with open(target, "wb") as out:
        pickle.dump({"model": model, "accuracy": accuracy}, out)
    print(f"digits: held-out accuracy {accuracy:.3f}, saved to {target}")


def samples(directory):
    from PIL import Image

    _, test_x, _, test_y = split()
    os.makedirs(directory, exist_ok=True)
    written = set()
    for pixels, label in zip(test_x, test_y, strict=True):
        if int(label) in written:
            continue
        ink = bytes(255 - int(value * 255 / 16) for value in pixels)
        image = Image.frombytes("L", (8, 8), ink).resize((32, 32), Image.NEAREST)
        image.save(os.path.join(directory, f"digit-{int(label)}.png"))
        written.add(int(label))
    print(f"wrote {len(written)} sample images to {directory}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--samples":
        samples(sys.argv[2])
    else:
        train(sys.argv[1] if len(sys.argv) > 1 else "model.pickle")
