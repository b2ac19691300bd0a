"""Train a classifier on the auto-encoder's codes: the encoder used outside the pipeline's stages.

    python examples/classify_codes.py              # the model of this checkout (after `make repro`)
    python examples/classify_codes.py --rev v1.0   # the model of another revision, through dvc.api

The codes were learned without a label; a logistic regression on them, fitted on the training split
and scored on the test split, says how much of the digit a 16-number code keeps. The embed stage
reports the same number as ``probe_accuracy``.
"""

import argparse

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mnist_ae.api import encode, load_model, load_model_at, load_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rev", help="a git revision whose model to use (default: this checkout's)")
    args = parser.parse_args()

    model = load_model_at(args.rev) if args.rev else load_model()
    train, test = load_split("train"), load_split("test")
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    classifier.fit(encode(model, train.images).numpy(), train.labels.numpy())
    accuracy = classifier.score(encode(model, test.images).numpy(), test.labels.numpy())
    print(f"logistic regression on the {model.code_dim}-d codes of the {model.kind} model: "
          f"{accuracy:.4f} accuracy on the {len(test):,} test images")


if __name__ == "__main__":
    main()
