import yaml

from check_repro import lock_inputs, metric_drift

LOCK = {
    "schema": "2.0",
    "stages": {
        "train": {
            "cmd": "python stages/train.py",
            "deps": [{"path": "data/prepared", "md5": "aaa.dir"}, {"path": "src/mnist_ae/train.py", "md5": "bbb"}],
            "params": {"params.yaml": {"train.epochs": 5}},
            "outs": [{"path": "data/models", "md5": "ccc.dir"}],
        },
        "evaluate": {
            "cmd": "python stages/evaluate.py",
            "deps": [{"path": "data/models", "md5": "ccc.dir"}],
            "outs": [{"path": "metrics/evaluate.json", "md5": "ddd"}],
        },
        "prepare": {"cmd": "python stages/prepare.py", "deps": [],
                    "outs": [{"path": "data/prepared", "md5": "aaa.dir"}]},
    },
}


def _changed(stage: str, path: str, md5: str) -> str:
    lock = yaml.safe_load(yaml.safe_dump(LOCK))
    for dep in lock["stages"][stage]["deps"]:
        if dep["path"] == path:
            dep["md5"] = md5
    return yaml.safe_dump(lock)


def test_outputs_of_other_stages_may_differ_across_machines() -> None:
    # Another machine's checkpoint and prepared data differ bit for bit: judged by the metrics instead.
    assert lock_inputs(_changed("evaluate", "data/models", "other.dir")) == lock_inputs(yaml.safe_dump(LOCK))
    assert lock_inputs(_changed("train", "data/prepared", "other.dir")) == lock_inputs(yaml.safe_dump(LOCK))


def test_changed_code_is_caught() -> None:
    assert lock_inputs(_changed("train", "src/mnist_ae/train.py", "zzz")) != lock_inputs(yaml.safe_dump(LOCK))


def test_metric_drift_uses_per_metric_tolerances() -> None:
    diff = {"metrics/evaluate.json": {"test_mse": {"old": 0.0111, "new": 0.0115}},
            "metrics/embed.json": {"knn_accuracy_tsne": {"old": 0.91, "new": 0.925},
                                   "cluster_nmi": {"old": 0.53, "new": 0.545},
                                   "size": {"old": 2000, "new": 2000}},
            "metrics/train/metrics.json": {"val_kl": {"old": 22.51, "new": 22.55}}}
    assert metric_drift(diff) == []
    diff["metrics/evaluate.json"]["test_mse"]["new"] = 0.0125
    diff["metrics/embed.json"]["knn_accuracy_tsne"]["new"] = 0.95
    diff["metrics/embed.json"]["cluster_nmi"]["new"] = 0.56
    diff["metrics/train/metrics.json"]["val_kl"]["new"] = 22.6
    assert len(metric_drift(diff)) == 4


def test_drift_lines_are_sorted_and_leave_out_the_epoch_counter() -> None:
    diff = {"metrics/train/metrics.json": {"train_loss": {"old": 0.01, "new": 0.5}, "step": {"old": 5, "new": 3}},
            "metrics/evaluate.json": {"train_mse": {"old": 0.01, "new": 0.5}, "test_mse": {"old": 0.01, "new": None}}}
    problems = metric_drift(diff)
    assert problems == sorted(problems) and len(problems) == 3
    assert not any(": step is" in problem for problem in problems)
