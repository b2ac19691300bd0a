"""``make exp-show``: ``dvc exp show`` narrowed to what tells experiments apart.

Plain ``dvc exp show`` lists every param, every metric and the hash of every dependency, some 90
columns. ``--only-changed`` leaves the columns whose values differ between the experiments shown:
every param that was changed. Of the rest, the headline metrics (mnist_ae/headline.py) are kept even
where equal. Dropped even where they differ: the dependency hashes (data/models changes with any
training param), the creation time and the detail metrics (per class, mean-image baselines, the
last epoch's step and validation numbers but a VAE's KL, embed's sample size).
"""

from __future__ import annotations

import subprocess
import sys

from mnist_ae.headline import headline_pattern

DROP = (r"^(Created|(src|stages|data)/.*|requirements\.lock|baseline_.*|test_mse_per_class\..*|step|size"
        r"|val_(loss|mse|reconstruction)|train_mse)$")


def main() -> None:
    keep = f"^(Experiment|{headline_pattern()})$"
    command = [sys.executable, "-m", "dvc", "exp", "show", "--only-changed", "--drop", DROP, "--keep", keep]
    sys.exit(subprocess.run([*command, *sys.argv[1:]]).returncode)


if __name__ == "__main__":
    main()
