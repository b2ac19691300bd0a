"""``make bench``: time the project's training and t-SNE against the tutorial versions, side by side.

Everything is measured in this one run on this machine: shared machines are noisy, so only
medians and ratios taken together mean anything. Needs the prepared data and the codes of a trained
model (``make repro`` first). ``docs``/README quote its output with the date and the command.

Training: the tutorial loop (``reference.py``) against the project's ``fit`` in float32 and bfloat16,
at the defaults and with a deeper model, each in its own process, the repeats alternated so a slow
spell hits all alike. Each row's GFLOP/s is set against the matrix-product peak of its precision,
measured here on a large square product: at batch 32 a step is many small products and one pass of
Adam over every parameter, so the peak is a ceiling the small shapes do not reach.
Then a whole ``dvc repro`` from the raw files, what an experiment costs beside its training
(``experiment.py``: each stage's process, imports and work, and ``dvc exp run`` against its training
time), and the train stage as ``dvc repro`` runs it against the tutorial loop's whole process; then
the train stage beside busy neighbours (``contention.py``); then t-SNE.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

import torch

from benchmarks.contention import contention_report
from benchmarks.experiment import ProjectCopy, report_experiment
from benchmarks.machine import describe_machine
from mnist_ae.core import paths
from mnist_ae.core.codes import load_codes
from mnist_ae.core.dataset import PIXELS
from mnist_ae.embedding.tsne import knn_accuracy, run_tsne, sample_indices
from mnist_ae.training.device import has_native_bf16

SAME_LOSS_TOLERANCE = 0.001  # the tutorial loop and fp32 are the same training
BF16_LOSS_TOLERANCE = 0.002  # bf16 against fp32, epoch by epoch
DEEPER = [512, 128]
# The hand-written step must pay for its ~200 lines: below this gain over autograd on the same
# in-memory loop, it goes (the issue that kept it set the bar).
MIN_HAND_STEP_GAIN = 1.25
# (row label, implementation, precision, hidden widths, train.step)
VARIANTS = [
    ("tutorial loop", "tutorial", "fp32", [256], "auto"),
    ("project", "project", "fp32", [256], "auto"),
    ("project, autograd step", "project", "fp32", [256], "autograd"),
    ("project", "project", "bf16", [256], "auto"),
    ("project, deeper", "project", "fp32", DEEPER, "auto"),
    ("project, deeper, autograd step", "project", "fp32", DEEPER, "autograd"),
    ("project, deeper", "project", "bf16", DEEPER, "auto"),
]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def train_flops_per_sample(hidden: list[int]) -> int:
    """A training step's FLOPs per sample: forward, gradient wrt activations and wrt weights (3x the
    forward's 2 per multiply-add)."""
    encoder = [PIXELS, *hidden, 16]
    return 3 * 2 * sum(a * b for a, b in pairwise(encoder + encoder[-2::-1]))


def matmul_peak_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 7) -> float:
    """The machine's matrix-product throughput on a large square product (median of ``repeats``)."""
    a, b = torch.rand(size, size, dtype=dtype), torch.rand(size, size, dtype=dtype)
    out = torch.empty(size, size, dtype=dtype)
    torch.mm(a, b, out=out)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def time_training(implementation: str, precision: str, hidden: list[int], epochs: int, step: str = "auto",
                  extra: tuple[str, ...] = ()) -> dict:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.worker", implementation, "--epochs", str(epochs),
         "--precision", precision, "--step", step, "--hidden", *map(str, hidden), *extra],
        capture_output=True, text=True, check=True,
    )
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "process_seconds": time.perf_counter() - started}


def time_tsne(sizes: list[int], methods: list[str], perplexity: float = 30.0) -> list[dict]:
    train = load_codes(paths.CODES).splits["train"]
    rows = []
    for size in sizes:
        index = sample_indices(len(train), size, seed=0)
        codes, labels = train.codes[index], train.labels[index]
        for method in methods:
            start = time.perf_counter()
            points = run_tsne(codes, method, perplexity, seed=0)
            seconds = time.perf_counter() - start
            rows.append({"size": size, "method": method, "seconds": seconds,
                         "knn_accuracy_2d": knn_accuracy(points, labels, neighbors=5)})
    return rows


# N2D's network (sweeps/n2d.yaml): where its sums depend on the thread count, train.threads decides
# between the same bits on any machine (one thread) and every core.
N2D_NETWORK = ([500, 500, 2000], ("--code-dim", "10", "--batch-size", "256"))


def report_threads(epochs: int, repeats: int) -> None:
    """N2D's network at train.threads same_bits and all_cores, alternated: seconds an epoch, and
    whether the two trained to the same weights."""
    hidden, extra = N2D_NETWORK
    runs: dict[str, list[dict]] = {"same_bits": [], "all_cores": []}
    for _ in range(repeats):
        for threads in runs:
            runs[threads].append(time_training("project", "fp32", hidden, epochs, extra=(*extra, "--threads", threads)))
    print(f"\n| N2D's network (784-500-500-2000-10, batch 256), {epochs} epochs x {repeats} | "
          "s an epoch (median) | last epoch's loss |\n| --- | --- | --- |")
    for threads, results in runs.items():
        seconds = statistics.median(s for r in results for s in r["epoch_seconds"])
        last = results[-1]
        print(f"| train.threads: {threads} | {seconds:.1f} | {last['losses'][-1]:.6f} |")
    same, fast = runs["same_bits"][-1], runs["all_cores"][-1]
    ratio = (statistics.median(s for r in runs["same_bits"] for s in r["epoch_seconds"])
             / statistics.median(s for r in runs["all_cores"] for s in r["epoch_seconds"]))
    print(f"all_cores {ratio:.2f}x the speed of same_bits; the same weights: {same['weights'] == fast['weights']}")


def report_training(results: dict[tuple[str, str, str], dict], peaks: dict[str, float], repeats: int) -> list[str]:
    """Print the training table and its ratios; returns the problems (a comparison that is void)."""
    print("| training, batch 32, full MNIST | precision | s/epoch (median) | samples/s | GFLOP/s "
          "| % of peak | final loss | peak RSS | whole process, s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    medians = {}
    for (label, precision, hidden), result in results.items():
        seconds = medians[label, precision] = statistics.median(result["epoch_seconds"])
        gflops = result["samples"] * train_flops_per_sample(json.loads(hidden)) / seconds / 1e9
        print(f"| {label} ({hidden}) | {precision} | {seconds:.2f} | {result['samples'] / seconds:,.0f} "
              f"| {gflops:.0f} | {100 * gflops / peaks[precision]:.0f} % | {result['losses'][-1]:.4f} "
              f"| {result['peak_rss_mib']:.0f} MiB | {statistics.median(result['process_seconds']):.1f} |")
    print(f"\nmedians over {repeats} alternated run(s) of each")
    problems = []

    def ratio(a: tuple[str, str], b: tuple[str, str], what: str) -> None:
        if a in medians and b in medians:
            print(f"{what}: {medians[a] / medians[b]:.2f}x")

    ratio(("tutorial loop", "fp32"), ("project", "fp32"), "fp32 against the tutorial loop, s/epoch")
    for label in ("project", "project, deeper"):
        autograd, hand = (f"{label}, autograd step", "fp32"), (label, "fp32")
        if autograd in medians and hand in medians:
            gain = medians[autograd] / medians[hand]
            print(f"the hand-written step against autograd on the same loop ({label}), s/epoch: {gain:.2f}x")
            if gain < MIN_HAND_STEP_GAIN:
                problems.append(f"{label}: the hand-written step gains only {gain:.2f}x over autograd "
                                f"(under {MIN_HAND_STEP_GAIN}x): it no longer pays for its code")
    ratio(("project", "fp32"), ("project", "bf16"), "bf16 against fp32, s/epoch")
    ratio(("project, deeper", "fp32"), ("project, deeper", "bf16"), f"bf16 against fp32 at {DEEPER}, s/epoch")
    losses = {(label, precision): result["losses"] for (label, precision, _), result in results.items()}
    gap = abs(losses["tutorial loop", "fp32"][-1] - losses["project", "fp32"][-1])
    if gap > SAME_LOSS_TOLERANCE:
        problems.append(f"the tutorial loop's final loss and fp32's differ by {gap:.4f}: not the same training")
    for label in ("project", "project, deeper"):
        if (label, "bf16") in losses:
            drift = max(abs(a - b) for a, b in zip(losses[label, "fp32"], losses[label, "bf16"]))
            print(f"{label}: bf16's per-epoch losses within {drift:.4f} of fp32's")
            if drift > BF16_LOSS_TOLERANCE:
                problems.append(f"{label}: bf16's losses drift {drift:.4f} from fp32's")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each training, alternated")
    parser.add_argument("--tsne-sizes", type=int, nargs="*", default=[2000, 10000])
    parser.add_argument("--skip-pipeline", action="store_true", help="do not time dvc repro and the train stage")
    parser.add_argument("--skip-contention", action="store_true",
                        help="do not time the train stage beside busy neighbours (benchmarks/contention.py)")
    parser.add_argument("--contention-seconds", type=float, default=8.0, help="timed training per contended run")
    parser.add_argument("--threads-epochs", type=int, default=2,
                        help="epochs of N2D's network at each train.threads setting (0: skip)")
    args = parser.parse_args()
    if not (paths.PREPARED / "train.pt").exists() or not paths.CODES.exists():
        sys.exit("error: no prepared data or codes: run `make repro` first")

    print(f"machine: {describe_machine()}")
    bf16 = has_native_bf16(torch.device("cpu"))
    precisions = ["fp32", "bf16"] if bf16 else ["fp32"]
    if not bf16:
        print("bf16 rows skipped: this CPU has neither AVX512-BF16 nor AMX")
    peaks = {precision: matmul_peak_gflops(DTYPES[precision]) for precision in precisions}
    print("matmul peak (2048x2048): " + ", ".join(f"{p} {g:.0f} GFLOP/s" for p, g in peaks.items()) + "\n")

    variants = [v for v in VARIANTS if v[2] in precisions]
    runs: dict[tuple[str, str, str], list[dict]] = {(label, p, json.dumps(h)): [] for label, _, p, h, _ in variants}
    for _ in range(args.repeats):  # alternated: a slow spell of a shared machine hits every variant alike
        for label, implementation, precision, hidden, step in variants:
            result = time_training(implementation, precision, hidden, args.epochs, step)
            runs[label, precision, json.dumps(hidden)].append(result)
    results = {key: {"epoch_seconds": [s for r in rs for s in r["epoch_seconds"]], "losses": rs[-1]["losses"],
                     "samples": rs[-1]["samples"], "peak_rss_mib": max(r["peak_rss_mib"] for r in rs),
                     "process_seconds": [r["process_seconds"] for r in rs]}
               for key, rs in runs.items()}
    problems = report_training(results, peaks, args.repeats)

    if not args.skip_pipeline:
        with tempfile.TemporaryDirectory() as tmp:
            copy = ProjectCopy(Path(tmp))
            full, noop = copy.dvc("repro"), copy.dvc("repro")
            print(f"\ndvc repro from the raw files: {full:.1f} s; again with nothing changed: {noop:.1f} s")
            problems += report_experiment(copy, args.repeats)
            stage: dict[str, list[float]] = {precision: [] for precision in precisions}
            tutorial = [time_training("tutorial", "fp32", [256], args.epochs)["process_seconds"]
                        for _ in range(args.repeats)]
            for _ in range(args.repeats):
                for precision in precisions:
                    copy.set_param("train", "precision", precision)
                    stage[precision].append(copy.dvc("repro", "-f", "-s", "train"))
            print(f"\nwhole processes, {args.epochs} epochs, median of {args.repeats}: tutorial loop "
                  f"{statistics.median(tutorial):.1f} s; `dvc repro -f -s train` (test MSE logged per epoch) "
                  + ", ".join(f"{p} {statistics.median(s):.1f} s" for p, s in stage.items()))
            for precision, seconds in stage.items():
                print(f"train stage in {precision} against the tutorial loop's process: "
                      f"{statistics.median(tutorial) / statistics.median(seconds):.2f}x")

    if args.threads_epochs:
        report_threads(args.threads_epochs, args.repeats)

    if not args.skip_contention:
        print()
        problems += contention_report(paths.PREPARED, args.contention_seconds, args.repeats)

    if args.tsne_sizes:
        print("\n| t-SNE | points | seconds | 5-NN accuracy in 2-D |\n| --- | --- | --- | --- |")
        for row in time_tsne(args.tsne_sizes, ["sklearn", "opentsne"]):
            print(f"| {row['method']} | {row['size']:,} | {row['seconds']:.1f} | {row['knn_accuracy_2d']:.3f} |")

    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
