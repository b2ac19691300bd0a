import pytest
import torch

from mnist_ae.device import select_device
from mnist_ae.errors import UserError


def test_auto_prefers_cuda_then_mps_then_cpu() -> None:
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert select_device("auto") == torch.device(expected)
    assert select_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_absent_device_is_a_clear_error() -> None:
    with pytest.raises(UserError, match="train.device is 'cuda' but no such device is available"):
        select_device("cuda")
