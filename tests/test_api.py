"""The encoder outside the stages, as the README shows it: loaded from a path, another revision or an
open file; the splits; encode and decode; the example script; an export that loads without this
package."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from helpers import PROJECT, edit_params, model_params, run
from mnist_ae.api import decode, encode, export, load_model, load_split
from mnist_ae.core.dataset import PIXELS
from mnist_ae.models.checkpoint import save_checkpoint
from mnist_ae.models.families import FAMILIES, build_model


@pytest.mark.parametrize("kind", list(FAMILIES))
def test_the_export_loads_without_this_package(kind: str, tmp_path: Path) -> None:
    model = build_model(model_params(kind), seed=0).eval()
    assert export(model, tmp_path) == {"encoder": tmp_path / "encoder.pt2", "decoder": tmp_path / "decoder.pt2"}
    images = torch.rand(5, PIXELS)  # another batch size than the export's example, and one image alone
    torch.save(images, tmp_path / "images.pt")
    code = ("import sys, torch; x = torch.load('images.pt'); assert 'mnist_ae' not in sys.modules;"
            "encoder = torch.export.load('encoder.pt2').module(); decoder = torch.export.load('decoder.pt2').module();"
            "assert torch.allclose(encoder(x[:1]), encoder(x)[:1], atol=1e-5);"
            "torch.save((encoder(x), decoder(encoder(x))), 'out.pt')")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    # -I: isolated, so neither the working folder nor an editable install puts the package on the path
    run([sys.executable, "-I", "-c", code], tmp_path, env=env)
    codes, decoded = torch.load(tmp_path / "out.pt")
    with torch.no_grad():
        torch.testing.assert_close(codes, model.encode(images))
        torch.testing.assert_close(decoded, model.decode(model.encode(images)))


def test_encode_and_decode_in_chunks_without_gradients(tmp_path: Path) -> None:
    model = build_model(model_params("mlp"), seed=0)
    save_checkpoint(tmp_path / "model.pt", model, {})
    loaded = load_model(str(tmp_path / "model.pt"))
    images = torch.rand(25_000, PIXELS)  # more than one chunk
    codes = encode(loaded, images)
    assert codes.shape == (25_000, 4) and not codes.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(codes[-3:], model.encode(images[-3:]))
        torch.testing.assert_close(decode(loaded, codes[:3]), model.decode(codes[:3]))


@pytest.mark.slow
def test_the_example_and_a_model_of_another_revision(project_copy: Path) -> None:
    """The example script trains a classifier on the codes of this checkout's model, then of the
    committed one through dvc.api while the workspace holds another."""
    example = [sys.executable, str(PROJECT / "examples" / "classify_codes.py")]
    first = run(example, project_copy).stdout
    assert "logistic regression on the 4-d codes of the mlp model" in first and "accuracy on the 200 test" in first
    dvc_cache_model = load_model(project_copy / "data/models/autoencoder.pt")
    edit_params(project_copy, "train", seed=1)
    run([sys.executable, "stages/train.py"], project_copy)  # the workspace's model changes, HEAD's does not
    old = run([*example, "--rev", "HEAD"], project_copy, check=False)
    assert old.returncode == 0, old.stderr
    assert old.stdout == first  # the committed model's figure (both models classify this small data alike)
    code = ("from mnist_ae.api import load_model_at; import torch;"
            "torch.save(load_model_at('HEAD').state_dict(), 'head.pt')")
    run([sys.executable, "-c", code], project_copy)
    for name, tensor in torch.load(project_copy / "head.pt").items():
        assert torch.equal(tensor, dvc_cache_model.state_dict()[name]), name
    assert len(load_split("validation", project_copy / "data/prepared")) == 100
