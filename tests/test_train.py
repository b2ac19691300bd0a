import contextlib
import copy
import itertools
import json

import pandas as pd
import pytest
import torch
from torch import nn

from helpers import model_params, train_params
from mnist_ae.core.dataset import PIXELS
from mnist_ae.core.errors import UserError
from mnist_ae.models.base import AutoEncoder
from mnist_ae.models.families import FAMILIES, build_model
from mnist_ae.models.losses import LOSSES
from mnist_ae.models.mlp import MLP
from mnist_ae.models.sections import family_kinds
from mnist_ae.params import TrainParams
from mnist_ae.training import cpu, loop
from mnist_ae.training.cpu import flushed_denormals, zero_denormal_moments
from mnist_ae.training.fast_step import IMPLEMENTS, FusedMLPStep, implements
from mnist_ae.training.live import epoch_log
from mnist_ae.training.loop import CHECK_EVERY, fit
from mnist_ae.training.steps import STEPS, AutogradStep, Step, choose_step

DEPTHS = [(32,), (48, 24), (40, 32, 24)]  # one, two and three hidden layers a side
SMALL = train_params(epochs=3, batch_size=16, lr=1e-2)


def make_step(model: nn.Module, config: TrainParams, max_batch: int, device: str = "cpu") -> Step:
    """The step ``fit`` trains ``model`` with, in one process."""
    return choose_step(model, config, torch.device(device), distributed=False).build(model, config, max_batch, False)


def make_model(hidden: tuple[int, ...] = (32,), seed: int = 0, kind: str = "mlp") -> AutoEncoder:
    family = {"hidden": list(hidden)} if kind in ("mlp", "vae") else {}
    return build_model(model_params(kind, **family), seed=seed)


def _fast_step_gradients(step: FusedMLPStep) -> list[torch.Tensor]:
    """The step's gradients in nn.Linear's layout, in the order of ``model.parameters()``."""
    grads = []
    for layer in step.layers:
        grads += [(layer.grad_w.t() if layer.transposed else layer.grad_w).float(), layer.grad_b.float()]
    return grads


@pytest.mark.parametrize("hidden", DEPTHS)
@pytest.mark.parametrize("batch", [8, 5])  # a full batch and a short last batch
def test_hand_written_gradients_match_autograd(hidden: tuple[int, ...], batch: int) -> None:
    model = make_model(hidden)
    reference = copy.deepcopy(model)
    data = torch.rand(batch, PIXELS)
    loss = nn.functional.mse_loss(reference(data), data)
    loss.backward()

    step = FusedMLPStep(model, max_batch=8, lr=1e-3)
    step.adam = lambda: None  # look at the gradients before Adam uses them
    loss_sum = torch.empty(())
    step(data, torch.arange(batch), loss_sum)

    torch.testing.assert_close(loss_sum / data.numel(), loss.detach())
    for (name, theirs), ours in zip(reference.named_parameters(), _fast_step_gradients(step)):
        torch.testing.assert_close(ours, theirs.grad, msg=name)


@pytest.mark.parametrize("hidden", DEPTHS)
def test_bf16_gradients_are_autocast_gradients_within_bf16_rounding(hidden: tuple[int, ...]) -> None:
    model = make_model(hidden)
    reference = copy.deepcopy(model)
    data = torch.rand(8, PIXELS)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = reference(data)
    (output.float() - data).pow(2).mean().backward()

    step = FusedMLPStep(model, max_batch=8, lr=1e-3, dtype=torch.bfloat16)
    step.adam = lambda: None
    step(data, torch.arange(8), torch.empty(()))
    for (name, theirs), ours in zip(reference.named_parameters(), _fast_step_gradients(step)):
        # bf16 keeps 8 bits of mantissa: agreement to a few percent of the gradient's scale.
        assert (ours - theirs.grad).abs().max() <= 0.05 * theirs.grad.abs().max() + 1e-6, name


@pytest.mark.parametrize("hidden", DEPTHS)
def test_one_step_matches_torch_adam_and_writes_back(hidden: tuple[int, ...]) -> None:
    model = make_model(hidden)
    reference = copy.deepcopy(model)
    data = torch.rand(8, PIXELS)
    optimizer = torch.optim.Adam(reference.parameters(), lr=1e-2)
    nn.functional.mse_loss(reference(data), data).backward()
    optimizer.step()
    step = FusedMLPStep(model, max_batch=8, lr=1e-2)
    step(data, torch.arange(8), torch.empty(()))
    before_sync = [p.clone() for p in model.parameters()]
    step.sync_model()
    for ours, theirs, unsynced in zip(model.parameters(), reference.parameters(), before_sync):
        torch.testing.assert_close(ours, theirs)
        assert not torch.equal(unsynced, theirs)  # the step trains its own copy until sync_model


def test_the_fast_step_covers_the_mlp_family_and_nothing_else() -> None:
    assert implements(make_model(), "mse")
    dropout = make_model()
    dropout.decoder.insert(1, nn.Dropout(0.1))
    no_sigmoid = make_model()
    no_sigmoid.decoder = no_sigmoid.decoder[:-1]
    no_bias = make_model()
    no_bias.encoder[0] = nn.Linear(PIXELS, 32, bias=False)
    frozen = make_model()
    frozen.encoder[0].weight.requires_grad_(False)

    class Residual(MLP):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) + 0.1 * x

    class Regularised(MLP):
        def objective(self, images: torch.Tensor, loss) -> torch.Tensor:
            return super().objective(images, loss) + self.encode(images).abs().sum()

    residual, regularised = Residual(4, model_params().mlp), Regularised(4, model_params().mlp)
    for model in (dropout, no_sigmoid, no_bias, frozen, residual, regularised, nn.Linear(4, 4)):
        assert not implements(model, "mse")
        assert isinstance(make_step(model, train_params(), max_batch=8), AutogradStep)
    assert isinstance(make_step(make_model(), train_params(), max_batch=8), FusedMLPStep)


@pytest.mark.parametrize("method", ["forward", "objective_terms", "combine"])
def test_an_mlp_that_computes_otherwise_trains_through_autograd(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """As if mlp.py itself had gained a ``forward``, ``objective_terms`` or ``combine`` of its own."""
    monkeypatch.setattr(MLP, method, lambda self, *args: getattr(AutoEncoder, method)(self, *args))
    assert not implements(make_model(), "mse")


def test_the_schema_names_every_family_loss_and_step() -> None:
    assert family_kinds() == list(FAMILIES)
    assert list(TrainParams.model_fields["loss"].annotation.__args__) == list(LOSSES)
    assert list(TrainParams.model_fields["step"].annotation.__args__) == ["auto", *(kind.name for kind in STEPS)]


def test_the_reference_step_is_the_last_resort_for_any_model_and_device() -> None:
    assert STEPS[-1].name == "autograd"
    assert all(STEPS[-1].applies(make_model(kind=kind), train_params(), torch.device(device), distributed)
               for kind in FAMILIES for device in ("cpu", "cuda", "mps") for distributed in (False, True))


@pytest.mark.parametrize("device", ["cuda", "mps", "meta"])
def test_the_hand_written_step_only_on_the_cpu(device: str) -> None:
    """It was measured against autograd on the CPU alone: elsewhere autograd trains, and naming it fails."""
    model, config = make_model(), train_params()
    assert choose_step(model, config, torch.device(device), distributed=False).name == "autograd"
    assert choose_step(model, config, torch.device("cpu"), distributed=True).name == "autograd"
    with pytest.raises(UserError, match=rf"train.step is 'fused_mlp', which does not apply to model.kind 'mlp' on "
                                        rf"mse on {device}; use auto or one of: autograd$"):
        choose_step(model, train_params(step="fused_mlp"), torch.device(device), distributed=False)


def test_train_step_names_the_step() -> None:
    assert choose_step(make_model(), train_params(step="fused_mlp"), torch.device("cpu"), False).name == "fused_mlp"
    assert choose_step(make_model(), train_params(step="autograd"), torch.device("cpu"), False).name == "autograd"
    with pytest.raises(UserError, match=r"does not apply to model\.kind 'conv' on mse on cpu"):
        fit(make_model(kind="conv"), torch.rand(8, PIXELS), train_params(step="fused_mlp"), progress=False)


def test_fit_trains_with_the_step_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stage chooses the step once, before any rank starts, and passes it on: ``fit`` and the
    thread check before training build that one (here autograd, where ``auto`` would take the
    hand-written step) and choose none themselves."""
    same_bits, checked = loop.same_bits_at_every_thread_count, []

    def check(kind: object, *args: object) -> bool:
        checked.append(kind)
        return same_bits(kind, *args)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a step was chosen or built other than the one given")

    monkeypatch.setattr(loop, "choose_step", refuse)
    monkeypatch.setattr(loop, "same_bits_at_every_thread_count", check)
    monkeypatch.setattr(FusedMLPStep, "__init__", refuse)
    for name in cpu.USER_THREAD_SETTINGS:  # two threads of its own choosing: the check runs
        monkeypatch.delenv(name, raising=False)
    autograd, before = next(entry for entry in STEPS if entry.name == "autograd"), torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        fit(make_model(), torch.rand(32, PIXELS), train_params(epochs=1, batch_size=16), progress=False,
            implementation=autograd)
    finally:
        torch.set_num_threads(before)
    assert checked == [autograd]


PAIRS = list(itertools.product(FAMILIES, LOSSES))


@pytest.mark.parametrize(("kind", "loss"), PAIRS)
def test_the_fast_step_only_for_the_pairs_it_implements(kind: str, loss: str) -> None:
    """Every (family, loss) pair: the hand-written step exactly where it says it is exact, and
    never with ``train.step: autograd``."""
    step = make_step(make_model(kind=kind), train_params(loss=loss), max_batch=8)
    assert isinstance(step, FusedMLPStep) == ((kind, loss) in IMPLEMENTS)
    forced = make_step(make_model(kind=kind), train_params(loss=loss, step="autograd"), max_batch=8)
    assert isinstance(forced, AutogradStep)


@pytest.mark.parametrize(("kind", "loss"), [pair for pair in PAIRS if pair not in IMPLEMENTS])
def test_fit_never_takes_the_fast_step_for_another_pair(kind: str, loss: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the hand-written step was taken for ({kind}, {loss})")

    monkeypatch.setattr(FusedMLPStep, "__init__", refuse)
    fit(make_model(kind=kind), torch.rand(32, PIXELS), train_params(epochs=1, batch_size=16, loss=loss), progress=False)


@pytest.mark.parametrize("step", ["auto", "autograd"])
@pytest.mark.parametrize("loss", list(LOSSES))
def test_fit_trains_the_loss_params_name(loss: str, step: str) -> None:
    """One full-batch step of the default single-process run against autograd and torch's Adam on
    that loss: were ``train.loss`` ignored, the weights would be those of another loss."""
    data = torch.rand(16, PIXELS)
    model, reference = make_model(), make_model()
    history = fit(model, data, train_params(epochs=1, batch_size=16, loss=loss, step=step), progress=False)
    optimizer = torch.optim.Adam(reference.parameters(), lr=1e-3)
    objective = LOSSES[loss](reference(data), data) / data.numel()
    objective.backward()
    optimizer.step()
    assert history == [pytest.approx(float(objective.detach()), rel=1e-5)]
    for ours, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("kind", list(FAMILIES))
def test_every_family_learns_on_every_loss(kind: str, loss: str) -> None:
    torch.manual_seed(0)
    data = torch.rand(8, PIXELS).repeat(8, 1)  # 8 images, each seen 8 times an epoch: quick to fit
    model = make_model(kind=kind)
    history = fit(model, data, train_params(epochs=4, batch_size=16, lr=3e-3, loss=loss), progress=False)
    assert history[-1] < history[0], history
    assert model.encode(data).shape == (64, 4) and model(data).shape == data.shape


def test_the_vae_objective_is_reconstruction_plus_beta_kl() -> None:
    """The reconstruction of a code drawn from the posterior (mean + sigma x noise) plus beta x KL, in
    evaluation as in training: drawn from the generator given, else from torch's own."""
    images = torch.rand(8, PIXELS)
    plain, weighted = (build_model(model_params("vae", beta=beta), seed=0).eval() for beta in (0.0, 2.0))
    with torch.no_grad():
        mean, log_variance = plain.posterior(images)
        kl = float(-0.5 * (1 + log_variance - mean.pow(2) - log_variance.exp()).sum())
        noise = torch.randn(mean.shape, generator=torch.Generator().manual_seed(3))
        reconstruction = float(LOSSES["mse"](plain.decode(mean + noise * (0.5 * log_variance).exp()), images))
        for model, beta in ((plain, 0.0), (weighted, 2.0)):
            terms = model.objective_terms(images, LOSSES["mse"], generator=torch.Generator().manual_seed(3))
            assert float(model.combine(terms)) == pytest.approx(reconstruction + beta * kl, rel=1e-5)
        assert reconstruction != pytest.approx(float(LOSSES["mse"](plain.decode(mean), images)), rel=1e-3)
        plain.train()  # training draws from torch's generator: the objective varies from call to call
        assert float(plain.objective(images, LOSSES["mse"])) != float(plain.objective(images, LOSSES["mse"]))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_model_outside_the_family_trains_through_autograd(precision: str) -> None:
    model = make_model()
    model.decoder.insert(1, nn.Tanh())  # not a layer the fast step knows
    data = torch.rand(100, PIXELS)
    history = fit(model, data, SMALL.model_copy(update={"precision": precision}), progress=False)
    assert history[-1] < history[0]
    assert all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fit_learns_and_is_deterministic(precision: str) -> None:
    data = torch.rand(100, PIXELS)
    config = train_params(epochs=3, batch_size=16, lr=1e-2, seed=1, precision=precision)
    first, second = make_model(), make_model()
    history = fit(first, data, config, progress=False)
    assert fit(second, data, config, progress=False) == history
    assert history[-1] < history[0]
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.equal(a, b) and a.dtype == torch.float32  # float32 master weights in both precisions


def test_bf16_follows_fp32_training() -> None:
    data = torch.rand(200, PIXELS)
    fp32 = fit(make_model(), data, SMALL, progress=False)
    bf16 = fit(make_model(), data, SMALL.model_copy(update={"precision": "bf16"}), progress=False)
    assert fp32 != bf16  # the products really ran in bfloat16
    assert max(abs(a - b) for a, b in zip(fp32, bf16)) < 0.002


def test_the_model_sees_each_epochs_weights() -> None:
    data = torch.rand(64, PIXELS)
    model, seen = make_model(), []
    fit(model, data, train_params(epochs=2, batch_size=16), progress=False,
        on_epoch_end=lambda epoch, loss: seen.append([p.clone() for p in model.parameters()]))
    assert not all(torch.equal(a, b) for a, b in zip(*seen))
    assert all(torch.equal(a, b) for a, b in zip(seen[-1], model.parameters()))


def test_a_batch_larger_than_the_data_allocates_only_the_data() -> None:
    step = make_step(make_model(), train_params(batch_size=10**9), max_batch=20)
    assert [buffers.n for buffers in step.buffers.values()] == [20]
    history = fit(make_model(), torch.rand(20, PIXELS), train_params(epochs=2, batch_size=10**9), progress=False)
    assert len(history) == 2


def test_an_empty_split_is_a_user_error() -> None:
    with pytest.raises(UserError, match="the training split is empty"):
        fit(make_model(), torch.empty(0, PIXELS), train_params(), progress=False)


def test_divergence_stops_with_epoch_and_step() -> None:
    data = torch.rand(64, PIXELS)
    data[37] = float("nan")  # a poisoned sample: the batch that holds it has a NaN loss
    with pytest.raises(UserError, match=r"training diverged at epoch 1, step \d+: the loss is nan; lower train.lr"):
        fit(make_model(), data, train_params(epochs=2, batch_size=8), progress=False)


def _train_into_denormals(flush: bool) -> tuple[FusedMLPStep, AutoEncoder]:
    """Pixels 0-9 lit for 5 steps, then dark for 1,000: their weights' gradients are zero from then
    on, and Adam's first moments for them decay by 0.9 a step, through the denormal range. With
    ``flush``, as ``fit`` trains: the CPU's flush mode on, the moments zeroed every CHECK_EVERY steps."""
    torch.manual_seed(0)
    lit, dark = torch.rand(8, PIXELS), torch.rand(8, PIXELS)
    dark[:, :10] = 0
    model = make_model()
    step = FusedMLPStep(model, max_batch=8, lr=1e-3)
    loss = torch.empty(())
    context = flushed_denormals() if flush else contextlib.nullcontext()
    with context:
        for i in range(1005):
            step(lit if i < 5 else dark, torch.arange(8), loss)
            if flush and (i + 1) % CHECK_EVERY == 0:
                zero_denormal_moments(step.moments())
    step.sync_model()
    return step, model


def _denormal_moments(step: FusedMLPStep) -> int:
    first_moments = step.moments()[0]
    return int(((first_moments != 0) & (first_moments.abs() < torch.finfo(torch.float32).tiny)).sum())


def test_flushing_denormals_changes_no_weight() -> None:
    plain_step, plain = _train_into_denormals(flush=False)
    assert _denormal_moments(plain_step) > 0  # they were there to flush
    flushed_step, flushed = _train_into_denormals(flush=True)
    assert _denormal_moments(flushed_step) == 0
    for a, b in zip(plain.parameters(), flushed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_fit_trains_with_denormals_flushed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(torch, "set_flush_denormal", lambda on: calls.append(on) or True)
    fit(make_model(), torch.rand(40, PIXELS), train_params(epochs=2, batch_size=8), progress=False)
    assert calls == [True, False, True, False]  # around each epoch's steps, then back to the default


def test_zero_denormal_moments_zeroes_only_denormals() -> None:
    tiny = torch.finfo(torch.float32).tiny
    moments = torch.tensor([tiny / 4, -tiny / 4, tiny, 0.5])  # two denormals, the smallest normal, a normal
    first, second = moments.clone(), moments.abs()
    zero_denormal_moments([first, second])
    assert first.tolist() == [0.0, 0.0, tiny, 0.5] and second.tolist() == [0.0, 0.0, tiny, 0.5]


def test_the_epoch_log_writes_each_term_of_the_objective(tmp_path) -> None:
    """A VAE's reconstruction and KL per epoch, apart, in the table every family writes; the
    validation loss is their sum with beta, per pixel."""
    model = build_model(model_params("vae", beta=2.0), seed=0)
    data = torch.rand(40, PIXELS)
    with epoch_log(tmp_path / "log", model, data[:10], LOSSES["mse"]) as metrics:
        fit(model, data, train_params(epochs=2, batch_size=16), progress=False, on_epoch_end=metrics)
    terms = pd.read_csv(tmp_path / "log" / "terms.csv")
    assert terms["step"].tolist() == [1, 1, 2, 2] and terms["term"].tolist() == ["reconstruction", "kl"] * 2
    last = terms[terms["step"] == 2].set_index("term")["value"]
    summary = json.loads((tmp_path / "log" / "metrics.json").read_text())
    assert summary["val_kl"] == last["kl"] and summary["val_reconstruction"] == last["reconstruction"]
    assert summary["val_loss"] == pytest.approx((last["reconstruction"] + 2.0 * last["kl"]) / PIXELS, abs=1e-5)
    assert not (tmp_path / "log" / "plots" / "metrics" / "val_kl.tsv").exists()  # a curve only some families draw


def test_the_cosine_schedule_is_torchs_cosine_annealing_stepped_once_a_batch() -> None:
    config = train_params(schedule="cosine", lr=1e-2)
    weight = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([weight], lr=config.lr)
    annealing = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=40, eta_min=0.0)
    for done in range(40):
        assert loop.cosine_learning_rate(config.lr, done, 40) == pytest.approx(optimizer.param_groups[0]["lr"],
                                                                              rel=1e-12)
        optimizer.step()
        annealing.step()
    assert loop.cosine_learning_rate(config.lr, 20, 40) == pytest.approx(5e-3)


@pytest.mark.parametrize("step", ["fused_mlp", "autograd"])
def test_each_step_trains_at_the_scheduled_rate(step: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """fit hands every step its rate, counted across epochs; and the rate reaches Adam: a step at
    rate 0 leaves the weights as they were."""
    data = torch.rand(40, PIXELS)
    config = train_params(epochs=2, batch_size=16, schedule="cosine", step=step)  # 3 steps an epoch, the last short
    implementation = choose_step(make_model(), config, data.device, False)
    seen = []
    original = implementation.build

    def recording(*args: object) -> Step:
        built = original(*args)
        set_lr = built.set_lr
        built.set_lr = lambda lr: (seen.append(lr), set_lr(lr))
        return built

    monkeypatch.setattr(loop, "choose_step", lambda *args: type(implementation)(
        implementation.name, implementation.applies, recording))
    fit(make_model(), data, config, progress=False)
    assert seen == pytest.approx([loop.cosine_learning_rate(config.lr, done, 6) for done in range(6)])
    assert seen[0] == config.lr and seen[-1] < config.lr / 10

    model = make_model()
    built = implementation.build(model, config, 16, False)
    built.set_lr(0.0)
    before = [p.detach().clone() for p in model.parameters()]
    built(data, torch.arange(16), torch.empty(()))
    built.sync_model()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_a_constant_schedule_leaves_the_rate_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """constant: no step is handed a rate (the defaults' bits are those of before the schedule)."""
    def no_rate(self: object, lr: float) -> None:
        raise AssertionError("a constant schedule sets no rate")

    monkeypatch.setattr(FusedMLPStep, "set_lr", no_rate)
    data = torch.rand(64, PIXELS)
    constant = fit(make_model(), data, train_params(epochs=2, batch_size=16), progress=False)
    monkeypatch.undo()
    assert constant != fit(make_model(), data, train_params(epochs=2, batch_size=16, schedule="cosine"), progress=False)
