"""``train.precision: bf16`` runs only where bfloat16 is native; elsewhere it stops with a clear error."""

import pytest
import torch

from mnist_ae.core.errors import UserError
from mnist_ae.training.device import check_precision


def _cpu_features(monkeypatch: pytest.MonkeyPatch, avx512_bf16: bool, amx: bool) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)


@pytest.mark.parametrize(("avx512_bf16", "amx"), [(True, False), (False, True), (True, True)])
def test_bf16_on_a_cpu_with_native_bf16(monkeypatch: pytest.MonkeyPatch, avx512_bf16: bool, amx: bool) -> None:
    _cpu_features(monkeypatch, avx512_bf16, amx)
    check_precision(torch.device("cpu"), "bf16")


def test_bf16_on_a_cpu_without_it_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _cpu_features(monkeypatch, False, False)
    with pytest.raises(UserError, match=r"train.precision is 'bf16' but this CPU has neither AVX512-BF16 nor AMX"):
        check_precision(torch.device("cpu"), "bf16")
    check_precision(torch.device("cpu"), "fp32")  # fp32 runs anywhere


def test_bf16_on_mps_is_refused() -> None:
    with pytest.raises(UserError, match="mps is not supported"):
        check_precision(torch.device("mps"), "bf16")
