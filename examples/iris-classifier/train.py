"""Train the iris classifier on the data scikit-learn ships and save it (run at image build)."""

import pickle
import sys

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def main(target):
    iris = load_iris()
    train_x, test_x, train_y, test_y = train_test_split(
        iris.data, iris.target, test_size=0.25, random_state=0, stratify=iris.target
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(train_x, train_y)
    accuracy = model.score(test_x, test_y)
    with open(target, "wb") as out:
        pickle.dump(
            {
                "model": model,
                "classes": [str(name) for name in iris.target_names],
                "features": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
                "accuracy": accuracy,
            },
            out,
        )
    print(f"iris: held-out accuracy {accuracy:.3f}, saved to {target}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "model.pickle")
