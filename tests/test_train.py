import copy

import pytest
import torch

from mnist_ae.errors import UserError
from mnist_ae.model import AutoEncoder, ModelConfig
from mnist_ae.train import TrainConfig, _Step, fit

CONFIG = ModelConfig(input_dim=64, hidden=32, code_dim=4)


def make_model(seed: int = 0) -> AutoEncoder:
    torch.manual_seed(seed)
    return AutoEncoder(CONFIG)


@pytest.mark.parametrize("batch", [8, 5])  # a full batch and a short last batch
def test_hand_written_gradients_match_autograd(batch: int) -> None:
    model = make_model()
    reference = copy.deepcopy(model)
    data = torch.rand(batch, CONFIG.input_dim)

    loss = torch.nn.functional.mse_loss(reference(data), data)
    loss.backward()

    step = _Step(model, batch_size=8, lr=1e-3)
    step.optimizer.step = lambda: None  # look at the gradients before Adam uses them
    loss_sum = torch.empty(())
    step(data, torch.arange(batch), loss_sum)

    torch.testing.assert_close(loss_sum / data.numel(), loss.detach())
    for (name, ours), (_, theirs) in zip(model.named_parameters(), reference.named_parameters()):
        torch.testing.assert_close(ours.grad, theirs.grad, msg=name)


def test_one_step_matches_torch_adam() -> None:
    model = make_model()
    reference = copy.deepcopy(model)
    data = torch.rand(8, CONFIG.input_dim)
    optimizer = torch.optim.Adam(reference.parameters(), lr=1e-2)
    torch.nn.functional.mse_loss(reference(data), data).backward()
    optimizer.step()
    _Step(model, batch_size=8, lr=1e-2)(data, torch.arange(8), torch.empty(()))
    for ours, theirs in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(ours, theirs)


def test_fit_learns_and_is_deterministic() -> None:
    data = torch.rand(100, CONFIG.input_dim)
    config = TrainConfig(epochs=3, batch_size=16, lr=1e-2, seed=1)
    first, second = make_model(), make_model()
    history = fit(first, data, config, progress=False)
    assert fit(second, data, config, progress=False) == history
    assert history[-1] < history[0]
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.equal(a, b)


def test_divergence_stops_with_epoch_and_step() -> None:
    data = torch.rand(64, CONFIG.input_dim)
    data[37] = float("nan")  # a poisoned sample: the batch that holds it has a NaN loss
    with pytest.raises(UserError, match=r"training diverged at epoch 1, step \d+: the loss is nan; lower train.lr"):
        fit(make_model(), data, TrainConfig(epochs=2, batch_size=8), progress=False)
