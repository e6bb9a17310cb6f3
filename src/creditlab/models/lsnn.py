"""LSNN (Bellec et al. 2018, 2020): a recurrent network of LIF and adaptive-threshold (ALIF) neurons with a
leaky readout, in discrete time (one step = ``dt`` ms), as in the e-prop paper's Methods and the
authors' ``EligALIF`` cell (IGITUGraz/eligibility_propagation, Figure 3 tutorials).

Per step ``t`` (inputs ``x_t`` (batch, channels), spikes ``z`` (batch, neurons))::

    a_t = rho a_{t-1} + z_{t-1}                                   threshold adaptation (ALIF; eq. 24)
    v_t = alpha v_{t-1} + x_t W_in + z_{t-1} W_rec - thr z_{t-1}      membrane, reset by subtraction (eq. 22)
    A_t = thr + beta a_t                                          adaptive threshold (beta = 0: LIF)
    z_t = H((v_t - A_t) / thr), 0 while refractory                spike (eq. 23)
    r_t = clip(r_{t-1} + n_ref z_t - 1, 0, n_ref)                 refractory counter (authors' convention:
                                                                  a spike blocks the next n_ref - 1 steps)
    zbar_t = kappa zbar_{t-1} + z_t;  y_t = zbar_t W_out            leaky readout (eq. 25, no bias)

with ``alpha = exp(-dt/tau_m)``, ``rho = exp(-dt/tau_a)``, ``kappa = exp(-dt/tau_out)``; ``W_rec`` has no
self-connections (its diagonal is masked). The spike's pseudo-derivative is
``dz/dv = (gamma / thr) max(0, 1 - |(v - A) / thr|)`` (dampening factor ``gamma``, eq. 7's psi),
and ``dz/da = -beta dz/dv``; both are 0 while refractory.

Inputs: spike trains ``(batch, time, channels)`` (any dtype; 0/1 values); outputs: the readout
``y`` for every step ``(batch, time, classes)``, scored by the sequence-classification task (the
targets say which steps count). The firing-rate regularizer of the authors' code
(``c sum_j (mean_{b,t} z_j / dt - f0)^2``) is part of the training loss of both rules that train it
(:func:`training_loss`). Trained only by ``bptt`` and ``eprop``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from creditlab.models import register_model
from creditlab.options import Option
from creditlab.tasks import SEQUENCE_CLASSIFICATION, Task


class SpikeFunction(torch.autograd.Function):
    """Heaviside of the scaled voltage forward; ``dampening * max(0, 1 - |v_scaled|)`` backward."""

    @staticmethod
    def forward(ctx, v_scaled: torch.Tensor, dampening: float) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(v_scaled)
        ctx.dampening = dampening
        return (v_scaled > 0).to(v_scaled.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: D102
        (v_scaled,) = ctx.saved_tensors
        return grad * ctx.dampening * (1 - v_scaled.abs()).clamp(min=0), None


class FeedbackReadout(torch.autograd.Function):
    """``zbar @ W_out`` whose backward sends the error to ``zbar`` through ``feedback`` instead of W_out."""

    @staticmethod
    def forward(ctx, zbar: torch.Tensor, weight: torch.Tensor, feedback: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(zbar, feedback)
        return zbar @ weight

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:  # noqa: D102
        zbar, feedback = ctx.saved_tensors
        return grad @ feedback.T, zbar.T @ grad, None


@dataclass
class Simulation:
    """One run of the network: readout ``outputs`` (batch, time, classes), ``spikes`` (batch, time, neurons)."""

    outputs: torch.Tensor
    spikes: torch.Tensor


class LSNN(nn.Module):
    """Recurrent LIF + ALIF network with a leaky readout (module docstring); parameters
    ``input_weight`` (channels, neurons), ``recurrent_weight`` (neurons, neurons), ``readout_weight``
    (neurons, classes)."""

    task: Task = SEQUENCE_CLASSIFICATION
    trained_by = ("bptt", "eprop")

    def __init__(self, channels: int, classes: int, n_regular: int = 50, n_adaptive: int = 50,
                 tau_membrane: float = 20.0, tau_adaptation: float = 2000.0, tau_readout: float = 20.0,
                 threshold: float = 0.6, beta: float = -1.0, dampening: float = 0.3, refractory: int = 5,
                 dt: float = 1.0, rate_target_hz: float = 10.0, rate_coefficient: float = 1.0) -> None:
        super().__init__()
        neurons = n_regular + n_adaptive
        self.channels, self.classes, self.neurons = channels, classes, neurons
        self.n_regular, self.n_adaptive = n_regular, n_adaptive
        self.alpha = math.exp(-dt / tau_membrane)
        self.rho = math.exp(-dt / tau_adaptation)
        self.kappa = math.exp(-dt / tau_readout)
        self.threshold, self.dampening, self.refractory, self.dt = threshold, dampening, refractory, dt
        if beta < 0:  # the authors' heuristic: 1.7 (1 - rho) / (1 - alpha)
            beta = 1.7 * (1 - self.rho) / (1 - self.alpha)
        self.beta_value = beta
        self.rate_target = rate_target_hz / 1000.0 * dt  # spikes per step
        self.rate_coefficient = rate_coefficient
        self.input_weight = nn.Parameter(torch.randn(channels, neurons) / math.sqrt(channels))
        self.recurrent_weight = nn.Parameter(torch.randn(neurons, neurons) / math.sqrt(neurons))
        bound = math.sqrt(6.0 / (neurons + classes))  # Glorot uniform, TF's default for the authors' W_out
        self.readout_weight = nn.Parameter(torch.empty(neurons, classes).uniform_(-bound, bound))
        self.register_buffer("beta", torch.cat([torch.zeros(n_regular), torch.full((n_adaptive,), beta)]))
        self.register_buffer("recurrent_mask", 1.0 - torch.eye(neurons))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Readout for every step, (batch, time, classes)."""
        return self.simulate(inputs).outputs

    def simulate(self, inputs: torch.Tensor, cut: bool = False, readout_feedback: torch.Tensor | None = None
                 ) -> Simulation:
        """Run the network over ``inputs`` (batch, time, channels).

        ``cut``: block the gradient of ``z_{t-1}`` into ``v_t`` (recurrent input and reset), keeping it
        into the adaptation and the readout: autograd then computes e-prop's update (the authors'
        ``stop_z_gradients``). ``readout_feedback`` (neurons, classes): the readout's backward uses it in
        place of ``W_out`` (e-prop's random / adaptive learning signal).
        """
        x = inputs.to(self.input_weight.dtype)
        batch, steps, _ = x.shape
        w_rec = self.recurrent_weight * self.recurrent_mask
        drive = x @ self.input_weight  # (batch, time, neurons): the inputs' share, all steps at once
        v = x.new_zeros(batch, self.neurons)
        a, z, r, zbar = torch.zeros_like(v), torch.zeros_like(v), torch.zeros_like(v), torch.zeros_like(v)
        outputs, spikes = [], []
        for t in range(steps):
            z_in = z.detach() if cut else z
            a = self.rho * a + z
            v = self.alpha * v + drive[:, t] + z_in @ w_rec - self.threshold * z_in
            v_scaled = (v - self.threshold - self.beta * a) / self.threshold
            z = torch.where(r > 0, torch.zeros_like(v), SpikeFunction.apply(v_scaled, self.dampening))
            r = (r + self.refractory * z.detach() - 1).clamp(0, self.refractory)
            zbar = self.kappa * zbar + z
            if readout_feedback is None:
                outputs.append(zbar @ self.readout_weight)
            else:
                outputs.append(FeedbackReadout.apply(zbar, self.readout_weight, readout_feedback))
            spikes.append(z)
        return Simulation(torch.stack(outputs, 1), torch.stack(spikes, 1))

    def rate_regularization(self, spikes: torch.Tensor) -> torch.Tensor:
        """``c sum_j (mean_{b,t} z_j - f0)^2``, rates in spikes per step (the authors' "simple" regularizer)."""
        rate = spikes.mean(dim=(0, 1))
        return self.rate_coefficient * (rate - self.rate_target).square().sum()


def training_loss(model: LSNN, simulation: Simulation, targets: torch.Tensor, loss_fn=None) -> torch.Tensor:
    """Task loss on the readout plus the firing-rate regularizer: what ``bptt`` and ``eprop`` descend."""
    task_loss = (loss_fn or model.task.loss)(simulation.outputs, targets)
    return task_loss + model.rate_regularization(simulation.spikes)


def lsnn_gradients(model: LSNN, inputs: torch.Tensor, targets: torch.Tensor, cut: bool = False,
                   readout_feedback: torch.Tensor | None = None, loss_fn=None
                   ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """Autograd gradients of :func:`training_loss` by parameter name, the task loss and the outputs.

    ``cut=False`` is BPTT (with the surrogate derivative); ``cut=True`` (and ``readout_feedback``)
    is e-prop computed by autograd on the graph with the recurrent paths blocked.
    """
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in model.named_parameters() if p.requires_grad]
    with torch.enable_grad():
        simulation = model.simulate(inputs, cut=cut, readout_feedback=readout_feedback)
        task_loss = (loss_fn or model.task.loss)(simulation.outputs, targets)
        loss = task_loss + model.rate_regularization(simulation.spikes)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    return ({n: (g if g is not None else torch.zeros_like(p)) for n, p, g in zip(names, params, grads, strict=True)},
            task_loss.detach(), simulation.outputs.detach())


LSNN_OPTIONS = {
    "n_regular": Option(50, "LIF neurons (no threshold adaptation)", minimum=0),
    "n_adaptive": Option(50, "ALIF neurons (adaptive threshold)", minimum=0),
    "tau_membrane": Option(20.0, "membrane time constant (ms)", above=0),
    "tau_adaptation": Option(2000.0, "threshold-adaptation time constant (ms)", above=0),
    "tau_readout": Option(20.0, "readout leak time constant (ms)", above=0),
    "threshold": Option(0.6, "baseline firing threshold", above=0),
    "beta": Option(-1.0, "adaptation strength of ALIF neurons; < 0: the authors' 1.7 (1-rho)/(1-alpha)",
                   unbounded=True),
    "dampening": Option(0.3, "dampening factor gamma of the pseudo-derivative", minimum=0),
    "refractory": Option(5, "refractory steps n_ref (a spike blocks the next n_ref - 1 steps)", minimum=1),
    "dt": Option(1.0, "time step (ms)", above=0),
    "rate_target_hz": Option(10.0, "firing-rate regularizer's target rate (Hz)", minimum=0),
    "rate_coefficient": Option(1.0, "firing-rate regularizer's coefficient (0: off)", minimum=0),
}


@register_model("lsnn", "LSNN: recurrent LIF + ALIF spiking network with a leaky readout (e-prop's model); "
                "sequence inputs (batch, time, channels)", default_dataset="evidence-short", options=LSNN_OPTIONS,
                optimizer="adam", lr=0.005, batch_size=64, epochs=1, normalization="unit")
def build_lsnn(input_shape: tuple[int, ...], num_classes: int, **options: object) -> LSNN:
    """An LSNN for inputs of shape (time, channels) and ``num_classes`` readout units."""
    from creditlab.options import resolve

    settings = resolve(LSNN_OPTIONS, options, "model lsnn", flag="--model-opt")
    if len(input_shape) != 2:
        raise ValueError(f"model lsnn takes sequence inputs (time, channels), got per-example shape "
                         f"{tuple(input_shape)}: use a sequence dataset (evidence, evidence-short)")
    if settings["n_regular"] + settings["n_adaptive"] < 1:
        raise ValueError("n_regular + n_adaptive (the LIF/ALIF split) must give at least one neuron, "
                         f"got n_regular={settings['n_regular']} n_adaptive={settings['n_adaptive']}")
    return LSNN(int(input_shape[-1]), num_classes, **settings)


__all__ = ["LSNN", "LSNN_OPTIONS", "Simulation", "SpikeFunction", "build_lsnn", "lsnn_gradients", "training_loss"]
