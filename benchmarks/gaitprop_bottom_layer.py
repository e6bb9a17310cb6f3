"""Why GAIT-prop's bottom-layer update on MNIST points away from BP's (issue #17, diagnosis).

On the 2020 paper's network (``invertible-mlp``, 4 hidden x 784, orthogonal init, float64) and 256
MNIST training images (inputs in [0, 1]), at initialization, with the regularizer off (λ = 0), this
prints the angle of each weight layer's GAIT-prop update to autograd's gradient for:

- the paper's setting (vanilla γ = 1e-3), with the inverse kept as LU factors (the default) and as the
  explicit W^{-1} (``inverse_method="inverse"``), and larger γ (1e-2, 1e-1);
- the same inputs scaled by 0.1 (activities 10x smaller, the same output error);
- adaptive rescaling (Dalm et al. 2021, γ0 = 1e-7);
- ``residual form``: the paper's target g_l(nudged) evaluated as h_{l-1} + W_l^{-1}(f^{-1}(nudged) − a_l)
  (equal in exact arithmetic; the solve's round-off is then relative to the small residual);
- ``offsets``: the same algorithm evaluated without cancellation, i.e. the offsets t_{l-1} − h_{l-1} =
  W_l^{-1} (γ f'(a_l) ⊙ (t_l − h_l)) propagated directly (what GAIT-prop's targets equal in exact
  arithmetic when no unit crosses the kink) instead of as differences of absolute targets;

and, per layer, the offset's norm ‖t_l − h_l‖ beside the inverse's round-off ‖g_{l+1}(h_{l+1}) − h_l‖
(the noise floor every offset computed as a difference of absolute activities carries).

    python benchmarks/gaitprop_bottom_layer.py [--out results/gaitprop/bottom_layer.jsonl]
"""

from __future__ import annotations

import argparse
import copy
from typing import Any

import torch

from creditlab.analysis.alignment import measure_alignment
from creditlab.data import load_dataset
from creditlab.models import build_model
from creditlab.models.invertible import leaky_relu_derivative, leaky_relu_inverse
from creditlab.results import append_record, make_record
from creditlab.rules import build_rule
from creditlab.rules.gaitprop import GaitProp


class OffsetGaitProp(GaitProp):
    """GAIT-prop's targets in exact arithmetic: offsets propagated by linear solves, never as differences
    of O(1) activities (a diagnostic, not the paper's algorithm; equal to it up to kink crossings)."""

    def lower_target(self, forward: Any, index: int, difference: torch.Tensor, scale: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        model = self.model
        pre_offset = self.gamma * leaky_relu_derivative(forward.pre[index], model.slope) * difference
        return torch.linalg.solve(model.layers[index].weight, pre_offset.T).T, scale / self.gamma


class ResidualGaitProp(GaitProp):
    """The paper's targets t_{l-1} = g_l(nudged), evaluated as h_{l-1} + W_l^{-1} (f^{-1}(nudged) − a_l): the
    same number in exact arithmetic (a_l = W_l h_{l-1} + b_l), but the solve acts on the small residual, so
    its round-off is relative to the offset, not to the O(1) activity (a diagnostic)."""

    def lower_target(self, forward: Any, index: int, difference: torch.Tensor, scale: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        model = self.model
        nudged = forward.post[index] + self.gamma * leaky_relu_derivative(forward.pre[index]) ** 2 * difference
        residual = leaky_relu_inverse(nudged, model.slope) - forward.pre[index]
        return torch.linalg.solve(model.layers[index].weight, residual.T).T, scale / self.gamma


def weight_angles(rule: GaitProp, inputs: torch.Tensor, targets: torch.Tensor) -> list[float]:
    """Angle (degrees) of each weight layer's update to the true gradient, layer 1 first."""
    metrics = measure_alignment(rule, inputs, targets)
    return [metrics[f"layers.{i}.weight"]["angle_deg"] for i in range(rule.model.depth)]


def offsets_and_roundoff(rule: GaitProp, inputs: torch.Tensor, targets: torch.Tensor
                         ) -> tuple[list[float], list[float]]:
    """Per layer l < L: mean over samples of ‖t_l − h_l‖ (vanilla γ) and of ‖g_{l+1}(h_{l+1}) − h_l‖."""
    model = rule.model
    with torch.no_grad():
        forward = model.forward_pass(inputs)
        offsets, roundoff = [], []
        difference = rule.output_target(forward, targets) - forward.output
        for index in range(model.depth - 1, 0, -1):
            nudged = forward.post[index] + rule.gamma * leaky_relu_derivative(forward.pre[index]) ** 2 * difference
            difference = model.invert_layer(index, nudged) - forward.post[index - 1]
            offsets.insert(0, float(difference.norm(dim=1).mean()))
            error = model.invert_layer(index, forward.post[index]) - forward.post[index - 1]
            roundoff.insert(0, float(error.norm(dim=1).mean()))
    return offsets, roundoff


def main() -> None:  # noqa: D103
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("mnist", normalization="unit")
    inputs, targets = data.train_x[:args.batch], data.train_y[:args.batch]
    model = build_model("invertible-mlp", (1, 28, 28), 10, seed=0)
    cases = {
        "vanilla gamma=1e-3 (paper)": (GaitProp, {"gamma": 1e-3}, 1.0),
        "vanilla gamma=1e-3, explicit inverse": (GaitProp, {"gamma": 1e-3}, 1.0),
        "vanilla gamma=1e-2": (GaitProp, {"gamma": 1e-2}, 1.0),
        "vanilla gamma=1e-1": (GaitProp, {"gamma": 1e-1}, 1.0),
        "vanilla gamma=1e-3, inputs x 0.1": (GaitProp, {"gamma": 1e-3}, 0.1),
        "adaptive gamma0=1e-7": (GaitProp, {"adaptive": True, "gamma0": 1e-7}, 1.0),
        "residual form, gamma=1e-3": (ResidualGaitProp, {"gamma": 1e-3}, 1.0),
        "offsets, gamma=1e-3 (exact arithmetic)": (OffsetGaitProp, {"gamma": 1e-3}, 1.0),
    }
    rows = {}
    print(f"invertible-mlp 4 x 784 float64, orthogonal init, {args.batch} MNIST images; angle to BP (deg), "
          "layer 1 ... 5")
    for label, (cls, options, input_scale) in cases.items():
        net = model
        if "explicit inverse" in label:
            net = copy.deepcopy(model)
            net.inverse_method = "inverse"
        rule = cls(net, orthogonality=0.0, **options)
        angles = weight_angles(rule, inputs * input_scale, targets)
        rows[label] = {"angles_deg": angles}
        print(f"  {label:<42} " + " ".join(f"{a:7.2f}" for a in angles))
    vanilla = build_rule("gaitprop", model, gamma=1e-3, orthogonality=0.0)
    offsets, roundoff = offsets_and_roundoff(vanilla, inputs, targets)
    print("  per layer 1 ... 4, vanilla gamma=1e-3: mean ||t_l - h_l|| vs mean ||g_{l+1}(h_{l+1}) - h_l||")
    for index, (offset, error) in enumerate(zip(offsets, roundoff, strict=True), start=1):
        print(f"    layer {index}: offset {offset:.3e}   inverse round-off {error:.3e}   ratio {offset / error:.1f}")
    rows["vanilla gamma=1e-3 (paper)"].update({"offset_norm": offsets, "inverse_roundoff_norm": roundoff})
    if args.out:
        config = {"model": "invertible-mlp", "width": 784, "depth": 4, "dtype": "float64", "init": "orthogonal",
                  "seed": 0, "images": args.batch, "data": "mnist (unit)", "orthogonality": 0.0}
        append_record(args.out, make_record("analysis", "gaitprop-bottom-layer", config, {"cases": rows}))


if __name__ == "__main__":
    main()
