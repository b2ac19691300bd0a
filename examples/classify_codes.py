"""Train a classifier on the auto-encoder's codes: the encoder used outside the pipeline's stages.

    python examples/classify_codes.py              # the model of this checkout (after `make repro`)
    python examples/classify_codes.py --rev autoencoder@v1.0.0   # a registered version, through dvc.api

The codes were learned without a label; a logistic regression on them, fitted on the training split
and scored on the test split, says how much of the digit a 16-number code keeps: the embed stage's
``probe_accuracy``, computed here from the model rather than from the stored codes.
"""

import argparse

from mnist_ae.api import encode, load_model, load_model_at, load_split
from mnist_ae.core.codes import Codes
from mnist_ae.embedding.downstream import probe_accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rev", help="a git revision whose model to use (default: this checkout's)")
    args = parser.parse_args()

    model = load_model_at(args.rev) if args.rev else load_model()
    train, test = load_split("train"), load_split("test")
    # The embed stage's probe (a logistic regression on standardised codes), here on codes made by the API.
    accuracy = probe_accuracy(Codes(encode(model, train.images).numpy(), train.labels.numpy()),
                              Codes(encode(model, test.images).numpy(), test.labels.numpy()))
    print(f"logistic regression on the {model.code_dim}-d codes of the {model.kind} model: "
          f"{accuracy:.4f} accuracy on the {len(test):,} test images")


if __name__ == "__main__":
    main()
