"""PyTorch parity through the package: the same weights through libvit and
through tests/parity/torch_vit.py give the same logits, loss, gradients and
AdamW steps, within the C parity tests' tolerances (tests/parity/parity.py,
whose cases and checks these are)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import libvit  # noqa: E402
import parity  # noqa: E402
from torch_vit import VisionTransformer  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.delenv("VIT_PARITY_PERTURB", raising=False)
    torch.set_num_threads(1)


@pytest.mark.parametrize("name", list(parity.CASES))
def test_same_logits_gradients_and_steps_as_pytorch(name):
    failures = []
    parity.run_case(name, parity.CASES[name], failures)
    assert not failures, "\n".join(failures)


def test_backward_from_an_outside_loss(ctx):
    """backward_logits with the gradient of a loss libvit does not have (half the
    mean squared logit), from images given as a Tensor, against PyTorch's autograd."""
    spec = {k: v for k, v in parity.CASES["vit-2block"].items() if k not in ("batch", "smoothing")}
    torch.manual_seed(3)
    ref = VisionTransformer(**spec).double()
    model = libvit.Model(ctx, **spec)
    model.load_state_dict({n: p.detach().float().numpy() for n, p in ref.named_parameters()})
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(p.float().double())
    x = torch.randn(4, 3, 32, 32).float()
    logits = model(libvit.Tensor(ctx, x.numpy()))
    model.backward_logits((logits / logits.shape[0]).astype(np.float32))
    ref_logits = ref(x.double())
    (0.5 * (ref_logits ** 2).sum() / 4).backward()
    assert parity.err(logits, ref_logits.detach().numpy()) <= parity.TOL_LOGITS
    for name, p in ref.named_parameters():
        assert parity.err(model.grad(name), p.grad.numpy()) <= parity.TOL_GRAD, name
