"""``make bench``: time the project's training and t-SNE against the tutorial versions, side by side.

Everything is measured in this one run on this machine: shared machines are noisy, so only
medians and ratios taken together mean anything. Needs the prepared data and a trained checkpoint
(``make repro`` first).

What is left to win at batch size 32, float32: a step is five 32x784x256 products (forward of the
first and last layers, the last layer's two gradients, the first layer's weight gradient) that MKL
runs at 70-90 us each here, plus fused Adam over 410k parameters at ~100 us. That floor, ~0.5 ms a
step or ~0.9 s an epoch, is 4.7x faster than the tutorial loop's 4.2 s an epoch here; 6x (0.7 s an
epoch) would need ~210 GFLOP/s, about the whole matmul peak of this machine (~215 GFLOP/s on a large
square product). Bigger batches or bf16 would go further but are not the same training.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mnist_ae import paths
from mnist_ae.checkpoint import load_checkpoint
from mnist_ae.dataset import load_split
from mnist_ae.embed import encode, knn_accuracy, run_tsne, sample_indices

# Forward FLOPs of one sample through 784-256-16-256-784 (2 per multiply-add); a training step costs
# about three times the forward pass (forward, gradient wrt activations, gradient wrt weights).
FORWARD_FLOPS = 2 * (784 * 256 + 256 * 16 + 16 * 256 + 256 * 784)
TRAIN_FLOPS_PER_SAMPLE = 3 * FORWARD_FLOPS
SAME_LOSS_TOLERANCE = 0.001


def matmul_peak_gflops(size: int = 2048, repeats: int = 7) -> float:
    """The machine's float32 matmul throughput on a large square product (median of ``repeats``)."""
    a, b = torch.rand(size, size), torch.rand(size, size)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def time_training(implementation: str, epochs: int) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.worker", implementation, "--epochs", str(epochs)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def time_tsne(sizes: list[int], methods: list[str], perplexity: float = 30.0) -> list[dict]:
    model, _ = load_checkpoint(paths.CHECKPOINT)
    train = load_split(paths.PREPARED, "train")
    rows = []
    for size in sizes:
        index = torch.from_numpy(sample_indices(len(train), size, seed=0))
        codes, labels = encode(model, train.images[index]), train.labels[index].numpy()
        for method in methods:
            start = time.perf_counter()
            points = run_tsne(codes, method, perplexity, seed=0)
            seconds = time.perf_counter() - start
            rows.append({"size": size, "method": method, "seconds": seconds,
                         "knn_accuracy_2d": knn_accuracy(points, labels, neighbors=5)})
    return rows


def time_pipeline() -> dict:
    """``dvc repro`` from the four raw files in a throwaway copy, then again with nothing changed."""
    source = paths.RAW / "MNIST" / "raw"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in ("dvc.yaml", "params.yaml", ".dvcignore", ".gitignore"):
            shutil.copy(name, root / name)
        for name in ("stages", "src"):
            shutil.copytree(name, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        shutil.copytree(source, root / "data/raw/MNIST/raw")
        shutil.copy("data/.gitignore", root / "data/.gitignore")
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

        def run(*args: str) -> float:
            start = time.perf_counter()
            result = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True)
            if result.returncode != 0:
                sys.exit(f"error: {' '.join(args)} failed in the copy of the project:\n{result.stderr}")
            return time.perf_counter() - start

        run("git", "init", "-q")
        run(sys.executable, "-m", "dvc", "init", "-q")
        run(sys.executable, "-m", "dvc", "config", "core.analytics", "false")
        run("git", "add", "-A")  # a clone has commits, and dvclive needs one
        run("git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "-q", "-m", "copy")
        return {"full": run(sys.executable, "-m", "dvc", "repro"), "noop": run(sys.executable, "-m", "dvc", "repro")}


def describe_machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1, help="training runs of each loop, alternated")
    parser.add_argument("--tsne-sizes", type=int, nargs="*", default=[2000, 10000])
    parser.add_argument("--skip-pipeline", action="store_true", help="do not time a full dvc repro")
    args = parser.parse_args()
    if not (paths.PREPARED / "train.pt").exists() or not paths.CHECKPOINT.exists():
        sys.exit("error: no prepared data or checkpoint: run `make repro` first")

    print(f"machine: {describe_machine()}")
    peak = matmul_peak_gflops()
    print(f"float32 matmul peak (2048x2048): {peak:.0f} GFLOP/s\n")

    # Repeats alternate between the two, so a slow spell of a shared machine hits both alike.
    runs: dict[str, list[dict]] = {"reference": [], "project": []}
    for _ in range(args.repeats):
        for name in runs:
            runs[name].append(time_training(name, args.epochs))
    results = {name: {"epoch_seconds": [s for r in rs for s in r["epoch_seconds"]], "losses": rs[-1]["losses"],
                      "samples": rs[-1]["samples"], "peak_rss_mib": max(r["peak_rss_mib"] for r in rs)}
               for name, rs in runs.items()}
    print("| training, batch 32, full MNIST | s/epoch (median) | samples/s | GFLOP/s | % of peak | final loss | peak RSS |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, result in results.items():
        seconds = statistics.median(result["epoch_seconds"])
        gflops = result["samples"] * TRAIN_FLOPS_PER_SAMPLE / seconds / 1e9
        print(f"| {name} | {seconds:.2f} | {result['samples'] / seconds:,.0f} | {gflops:.0f} | {100 * gflops / peak:.0f} % "
              f"| {result['losses'][-1]:.4f} | {result['peak_rss_mib']:.0f} MiB |")
    reference, project = (statistics.median(results[n]["epoch_seconds"]) for n in ("reference", "project"))
    print(f"\nspeed-up: {reference / project:.1f}x (medians over {args.repeats} alternated run(s) of {args.epochs} epochs "
          f"each); {args.epochs} epochs at the median pace: {args.epochs * reference:.1f} s (reference), "
          f"{args.epochs * project:.1f} s (project)")
    gap = abs(results["reference"]["losses"][-1] - results["project"]["losses"][-1])
    print(f"final losses differ by {gap:.4f}: " + ("same training" if gap <= SAME_LOSS_TOLERANCE else
                                                  "NOT the same training, the comparison is void"))

    if args.tsne_sizes:
        print("\n| t-SNE | points | seconds | 5-NN accuracy in 2-D |\n| --- | --- | --- | --- |")
        for row in time_tsne(args.tsne_sizes, ["sklearn", "opentsne"]):
            print(f"| {row['method']} | {row['size']:,} | {row['seconds']:.1f} | {row['knn_accuracy_2d']:.3f} |")

    if not args.skip_pipeline:
        timings = time_pipeline()
        print(f"\ndvc repro from the raw files: {timings['full']:.1f} s; again with nothing changed: {timings['noop']:.1f} s")
    if gap > SAME_LOSS_TOLERANCE:
        sys.exit(1)


if __name__ == "__main__":
    main()
