import os

import pytest
import torch

from mnist_ae.core.errors import UserError
from mnist_ae.training.device import make_deterministic, select_device


def _machine(monkeypatch: pytest.MonkeyPatch, cuda: bool, mps: bool) -> None:
    """Pretend this machine has (or lacks) CUDA and Apple MPS, whatever it really has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize(("cuda", "mps", "expected"), [
    (True, True, "cuda"),
    (True, False, "cuda"),
    (False, True, "mps"),
    (False, False, "cpu"),
])
def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch: pytest.MonkeyPatch, cuda: bool, mps: bool,
                                            expected: str) -> None:
    _machine(monkeypatch, cuda, mps)
    assert select_device("auto") == torch.device(expected)
    assert select_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_a_named_device_that_is_present_is_taken(monkeypatch: pytest.MonkeyPatch, device: str) -> None:
    _machine(monkeypatch, cuda=True, mps=True)
    assert select_device(device) == torch.device(device)


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_absent_device_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, device: str) -> None:
    _machine(monkeypatch, cuda=False, mps=False)
    with pytest.raises(UserError, match=f"train.device is '{device}' but no such device is available here; "
                                        "use 'auto' or 'cpu'"):
        select_device(device)


@pytest.mark.parametrize(("device", "switched_on"), [("cpu", False), ("cuda", True), ("mps", True)])
def test_the_determinism_switch_is_set_off_the_cpu_only(monkeypatch: pytest.MonkeyPatch, device: str,
                                                        switched_on: bool) -> None:
    """Off the CPU torch warns about nondeterministic ops and cuBLAS needs a fixed workspace; on the
    CPU the switch does nothing for this pipeline's ops and costs the import of torch's compiler."""
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", "x")  # so that teardown restores what was there before
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")
    was_on = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        torch.use_deterministic_algorithms(False)
        make_deterministic(torch.device(device))
        assert torch.are_deterministic_algorithms_enabled() is switched_on
        assert ("CUBLAS_WORKSPACE_CONFIG" in os.environ) is switched_on
    finally:
        torch.use_deterministic_algorithms(was_on, warn_only=was_warn_only)
