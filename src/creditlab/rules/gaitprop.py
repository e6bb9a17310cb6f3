"""GAIT-prop: gradient-adjusted incremental target propagation (Ahmad, van Gerven & Ambrogioni 2020),
with the adaptive rescaling of Dalm, Ahmad, Ambrogioni & van Gerven (2021, "Scaling up learning with
GAIT-prop").

On an :class:`~creditlab.models.invertible.InvertibleMLP` with L layers, for one batch::

    t_L = h_L − ∂ℓ_n/∂h_L                 readout units; auxiliary units keep t = h (2020 code, run.py)
    for l = L .. 2:
        t_{l-1} = g_l( h_l + γ_l f'(a_l)² ⊙ (t_l − h_l) )     the gradient-adjusted incremental target
                                                             (2020 paper, Algorithm 1; repo get_gait_updates)
    local loss of layer l:  s_l ½‖t_l − h_l‖²,  s_l = Π_{k > l} 1/γ_k   (= γ^-(L−l) for a fixed γ)

and ``.grad`` of W_l, b_l is the batch mean of that local loss's gradient (targets held fixed), plus
λ dR/dW of the orthogonality regularizer on square layers (``orthogonality``, ``orthogonality_form``;
the 2020 README's setting is λ = 0.1 with the off-diagonal form of its code).

Why it is backprop: linearizing g_l at h_l, (t_{l-1} − h_{l-1}) = γ_l W_l^{-1} [f'(a_l) ⊙ (t_l − h_l)]:
the f'² cancels the 1/f' of f^{-1} and leaves BP's single f'; with W_l orthogonal W_l^{-1} = W_l^T, so
(h_{l-1} − t_{l-1}) s_{l-1} is exactly BP's error at layer l − 1 and every layer's update equals the
gradient ("backpropagation and GAIT-prop give identical updates when synaptic weight matrices are
orthogonal", 2020 abstract). For leaky-ReLU the linearization is exact unless a unit's pre-activation
crosses 0 under the nudge.

γ (``gamma``, 1e-3 in the 2020 code) is one number for every layer and sample unless ``adaptive``:

    γ_l[n] = γ0 · sqrt(N_l) / ‖t_l[n] − h_l[n]‖₂      per sample and layer, γ0 = 1e-7 (``gamma0``)
    s_{l-1}[n] = s_l[n] / γ_l[n]                     the error-scale bookkeeping ("mult_factor")

(Dalm et al. 2021, ``InvDense.compute_adaptive_gamma`` / ``propagate_target`` of their code): every
nudge then has norm γ0·sqrt(N_l) however small the error, so the offsets t − h no longer shrink like
γ^(L−l) into round-off in deep nets. Targets are absolute activities and the offsets are differences
of them, as in both codebases: that is what makes vanilla GAIT-prop lose the bottom layers at depth
(with γ = 1e-3, γ^6 = 1e-18 is below float64 resolution relative to O(1) activities).

Output loss (``output_loss``): ``mse`` (½‖y − h_L[:K]‖², the 2020 paper) or ``cross-entropy`` (softmax,
the 2021 follow-up). Accepted models: ``invertible-mlp`` only (any width, depth, tower, dtype).
Refused settings: γ outside (0, 1), and a nudge (γ, or γ0 when adaptive) below 100 × the model dtype's
machine epsilon (use ``--model-opt dtype=float64``).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from creditlab.models.invertible import ForwardPass, leaky_relu_derivative
from creditlab.rules import register_rule
from creditlab.rules._local_targets import LocalTargetRule
from creditlab.rules.base import DemoSetting, LossFn

#: the nudge must be at least this many machine epsilons of the model's dtype
MIN_NUDGE_EPS = 100.0


@register_rule("gaitprop")
class GaitProp(LocalTargetRule):
    """GAIT-prop on an invertible MLP: exact inverses of gradient-adjusted nudges as layer targets."""

    name = "gaitprop"
    description = "GAIT-prop (Ahmad 2020): gradient-adjusted incremental targets through exact inverses"
    #: a narrow net (dense 784 -> 128 input layer, 2 square layers); float64 keeps γ = 1e-3's nudges two
    #: layers down above round-off (float32 loses the bottom layer: cosine to BP ~0.06 at γ = 1e-3).
    #: Measured 0.8275-0.8565 over seeds 0-4 (1 epoch of 3000 images, 50 steps); floor with ~8 points margin
    demo = DemoSetting(floor=0.75, model="invertible-mlp", train_limit=3000, test_limit=2000, epochs=1,
                       model_options={"width": 128, "depth": 2, "dtype": "float64"}, training={"lr": 1e-3})

    def __init__(self, model: nn.Module, loss_fn: LossFn | None = None, output_loss: str = "mse",
                 gamma: float = 1e-3, adaptive: bool = False, gamma0: float = 1e-7,
                 orthogonality: float = 0.1, orthogonality_form: str = "off-diagonal") -> None:
        super().__init__(model, loss_fn, output_loss, orthogonality, orthogonality_form)
        if not 0.0 < gamma < 1.0:
            raise ValueError(f"rule 'gaitprop': gamma must lie in (0, 1) (a small nudge), got {gamma}")
        if not 0.0 < gamma0 < 1.0:
            raise ValueError(f"rule 'gaitprop': gamma0 must lie in (0, 1), got {gamma0}")
        nudge, which = (gamma0, "gamma0") if adaptive else (gamma, "gamma")
        eps = torch.finfo(self.model.dtype).eps
        if nudge < MIN_NUDGE_EPS * eps:
            raise ValueError(f"rule 'gaitprop': {which}={nudge:g} is below the resolution of the model's "
                             f"{self.model.dtype} ({MIN_NUDGE_EPS:g} x eps = {MIN_NUDGE_EPS * eps:.3g}): the "
                             f"targets would be round-off. Use a float64 model (--model-opt dtype=float64) or "
                             f"{which} >= {MIN_NUDGE_EPS * eps:.3g}")
        self.gamma, self.adaptive, self.gamma0 = float(gamma), bool(adaptive), float(gamma0)

    def initial_scale(self, forward: ForwardPass) -> torch.Tensor:
        """s_L = 1 for every sample (the error scale accumulates 1/γ on the way down)."""
        return torch.ones(forward.output.shape[0], dtype=self.model.dtype, device=forward.output.device)

    def lower_target(self, forward: ForwardPass, index: int, target: torch.Tensor, scale: torch.Tensor | None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step down: from t_l at layer ``index`` to t_{l-1}, and the error scale.

        t_{l-1} = g_l(h_l + γ f'(a_l)² ⊙ (t_l − h_l)); the scale accumulates 1/γ (per sample when adaptive).
        """
        model = self.model
        difference = target - forward.post[index]  # t_l − h_l
        adjusted = leaky_relu_derivative(forward.pre[index], model.slope) ** 2 * difference
        if self.adaptive:  # γ_l[n] = γ0 sqrt(N_l) / ‖t_l[n] − h_l[n]‖ (Dalm et al. 2021)
            norm = difference.norm(dim=1).clamp_min(torch.finfo(model.dtype).tiny)
            gamma = self.gamma0 * math.sqrt(difference.shape[1]) / norm
            nudged = forward.post[index] + gamma.unsqueeze(1) * adjusted
            scale = scale / gamma
        else:
            nudged = forward.post[index] + self.gamma * adjusted
            scale = scale / self.gamma
        partial = model.invert_layer(index, nudged)  # t_{l-1} on the N_l units layer l reads
        return self.re_append(index - 1, partial, forward), scale
