import torch

from cosmicai.model import AstroMAE, count_parameters


def test_parameter_and_state_dict_sizes_match_reference():
    model = AstroMAE()
    assert count_parameters(model) == 15_801_513
    assert len(model.state_dict()) == 388


def test_forward_shape_and_float64_magnitudes():
    model = AstroMAE().eval()
    with torch.inference_mode():
        out = model(torch.randn(3, 5, 32, 32), torch.randn(3, 5, dtype=torch.float64))
    assert out.shape == (3, 1)
    assert torch.isfinite(out).all()
