"""The STDP-CSNN feature extractor (Falez et al.; the configuration of Goupy et al. 2024).

Preprocessing (DoG on/off, or whitening + sign separation for CIFAR-10) -> per-feature min-max
scaling -> latency coding -> one spiking conv layer of 128 5x5 IF filters -> 4x4 max pooling of spike
times (the earliest spike of each window). Training is unsupervised and online: each image gives one
random 5x5 patch; the first filter to fire on it wins (WTA), its weights move by multiplicative STDP
and every threshold adapts towards the target firing time ``t_obj`` (the winner up, the others down).
No WTA at inference. Departures from the authors' C++ simulator: our IF test is strict (V > theta
after a whole timestamp group) where theirs is V >= theta per spike; whitening filters are ZCA
filters fitted here (theirs ship precomputed).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from creditlab.spiking import preprocess
from creditlab.spiking.coding import latency_code
from creditlab.spiking.event_layer import first_spikes, first_to_fire, uses_compiled_kernel
from creditlab.spiking.stdp import multiplicative


@dataclass(frozen=True)
class CSNNConfig:
    """Every setting of the extractor (ft-extract/STDP-CSNN/csnn/config/<DS>.json)."""

    preprocessing: str = "dog"  # "dog" | "whiten"
    dog: tuple[int, float, float] = (7, 1.0, 2.0)
    whiten_patch: int = 9
    filters: int = 128
    kernel: int = 5
    pool: int = 4
    w_init_mean: float = 0.5
    w_init_std: float = 0.01
    threshold: float = 5.0
    min_threshold: float = 2.0
    threshold_lr: float = 1.0
    target_time: float = 0.8
    stdp_lr: float = 0.1
    beta: float = 1.0
    annealing: float = 0.95
    epochs: int = 100

    def __post_init__(self) -> None:
        if self.preprocessing not in ("dog", "whiten"):
            raise ValueError(f"unknown preprocessing {self.preprocessing!r}; valid: dog, whiten")
        if self.epochs < 1 or self.filters < 2 or self.kernel < 1 or self.pool < 1:
            raise ValueError("epochs must be >= 1, filters >= 2, kernel and pool >= 1")
        if not 0 <= self.target_time <= 1:
            raise ValueError(f"target_time must lie in [0, 1], got {self.target_time}")


#: the authors' configurations per dataset
PAPER_CONFIGS = {
    "mnist": CSNNConfig(target_time=0.75),
    "fashion-mnist": CSNNConfig(target_time=0.80),
    "cifar10": CSNNConfig(preprocessing="whiten", threshold=10.0, target_time=0.95),
}


class STDPCSNN(nn.Module):
    """The extractor; ``fit`` trains it, ``encode`` maps images (B, C, H, W) in [0, 1] to pooled
    spike times (B, filters, H', W')."""

    def __init__(self, input_shape: tuple[int, int, int], config: CSNNConfig,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config, self.input_shape = config, tuple(input_shape)
        channels = 2 * input_shape[0]
        init = torch.randn(config.filters, channels, config.kernel, config.kernel, generator=generator)
        self.register_buffer("weight", (init * config.w_init_std + config.w_init_mean).clamp_(0, 1))
        self.register_buffer("thresholds", torch.full((config.filters,), config.threshold))
        shape = (channels, *input_shape[1:])
        self.register_buffer("scale_low", torch.zeros(shape))
        self.register_buffer("scale_high", torch.ones(shape))
        size = config.whiten_patch
        self.register_buffer("whitening", torch.zeros(input_shape[0], input_shape[0], size, size))
        self.register_buffer("trained", torch.zeros((), dtype=torch.bool))

    @property
    def output_shape(self) -> tuple[int, int, int]:
        c = self.config
        return (c.filters, *(preprocess.output_size(s, c.kernel, c.pool) for s in self.input_shape[1:]))

    def _filtered(self, images: torch.Tensor) -> torch.Tensor:
        if self.config.preprocessing == "dog":
            return preprocess.on_off(images, preprocess.dog_kernel(*self.config.dog))
        return preprocess.whiten_separate(images, self.whitening)

    def input_times(self, images: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
        """Latency-coded, scaled, filtered images (B, 2C, H, W)."""
        parts = [latency_code(preprocess.apply_scaling(self._filtered(images[i:i + chunk]), self.scale_low,
                                                       self.scale_high)) for i in range(0, len(images), chunk)]
        return torch.cat(parts)

    def fit(self, images: torch.Tensor, generator: torch.Generator) -> dict[str, float]:
        """Unsupervised training on ``images`` (in stored order, ``config.epochs`` passes)."""
        c = self.config
        if c.preprocessing == "whiten":
            self.whitening.copy_(preprocess.fit_whitening(images, c.whiten_patch, generator))
        filtered = torch.cat([self._filtered(images[i:i + 2048]) for i in range(0, len(images), 2048)])
        low, high = preprocess.fit_scaling(filtered)
        self.scale_low.copy_(low)
        self.scale_high.copy_(high)
        times = latency_code(preprocess.apply_scaling(filtered, low, high))
        del filtered
        weights = self.weight.view(c.filters, -1)
        thresholds = self.thresholds
        lr_th, a_plus, a_minus = c.threshold_lr, c.stdp_lr, c.stdp_lr
        height, width = times.shape[2:]
        wins = 0
        compiled = self._fit_epoch_compiled if uses_compiled_kernel(times, weights) else None
        for _ in range(c.epochs):
            ys = torch.randint(0, height - c.kernel + 1, (len(times),), generator=generator)
            xs = torch.randint(0, width - c.kernel + 1, (len(times),), generator=generator)
            if compiled is not None:
                wins += compiled(times, ys, xs, weights, thresholds, lr_th, a_plus, a_minus)
                lr_th, a_plus, a_minus = lr_th * c.annealing, a_plus * c.annealing, a_minus * c.annealing
                continue
            ys, xs = ys.tolist(), xs.tolist()
            for n in range(len(times)):
                patch = times[n, :, ys[n]:ys[n] + c.kernel, xs[n]:xs[n] + c.kernel].reshape(1, -1)
                spikes = first_spikes(patch, weights, thresholds)
                if not bool((spikes.times < 1).any()):
                    continue
                winner = int(first_to_fire(spikes.times[0], spikes.potentials[0]))
                t_post = float(spikes.times[0, winner])
                # target-timestamp threshold adaptation, then the winner up / the others down
                thresholds -= lr_th * (t_post - c.target_time)
                thresholds -= lr_th / (c.filters - 1)
                thresholds[winner] += lr_th + lr_th / (c.filters - 1)
                thresholds.clamp_(min=c.min_threshold)
                weights[winner] = multiplicative(weights[winner], patch[0], t_post, a_plus, a_minus, c.beta)
                wins += 1
            lr_th, a_plus, a_minus = lr_th * c.annealing, a_plus * c.annealing, a_minus * c.annealing
        self.trained.fill_(True)
        return {"updates": wins, "mean_threshold": float(thresholds.mean())}

    @torch.no_grad()
    def encode(self, images: torch.Tensor, chunk: int = 64) -> torch.Tensor:
        """Pooled first-spike times (B, filters, H', W') of images in [0, 1]."""
        if not bool(self.trained):
            raise RuntimeError("the STDP-CSNN extractor is untrained: call fit() (or load trained weights) first")
        out = []
        for i in range(0, len(images), chunk):
            maps = self.conv_spike_times(self.input_times(images[i:i + chunk]))
            out.append(-F.max_pool2d(-maps, self.config.pool))  # earliest spike per window
        return torch.cat(out)

    @torch.no_grad()
    def conv_spike_times(self, times: torch.Tensor) -> torch.Tensor:
        """First-spike times (B, filters, H-k+1, W-k+1) of the conv neurons, before pooling, on
        latency-coded inputs ``times`` (B, 2C, H, W) (``input_times``)."""
        c = self.config
        b, _, h, w = times.shape
        cols = F.unfold(times, c.kernel)  # (b, C*k*k, L)
        rows = cols.transpose(1, 2).reshape(-1, cols.shape[1])
        spikes = first_spikes(rows, self.weight.view(c.filters, -1), self.thresholds).times  # (b*L, F)
        return spikes.view(b, h - c.kernel + 1, w - c.kernel + 1, c.filters).permute(0, 3, 1, 2)

    def _fit_epoch_compiled(self, times: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, weights: torch.Tensor,
                            thresholds: torch.Tensor, threshold_lr: float, a_plus: float, a_minus: float) -> int:
        """One epoch of :meth:`fit` by the compiled kernel (:mod:`creditlab.spiking.kernels`)."""
        from creditlab.spiking import kernels  # noqa: PLC0415

        c = self.config
        weights_t = weights.t().contiguous()
        wins = kernels.csnn_fit_epoch(times.contiguous().numpy(), ys.numpy(), xs.numpy(), weights.numpy(),
                                      weights_t.numpy(), thresholds.numpy(), c.kernel, threshold_lr,
                                      np.float32(a_plus), np.float32(a_minus), np.float32(c.beta),
                                      c.target_time, np.float32(c.min_threshold))
        return int(wins)

    def fingerprint(self) -> str:
        """A hash of the configuration and every trained tensor: the feature cache's key."""
        digest = hashlib.sha1(json.dumps(asdict(self.config), sort_keys=True).encode())
        digest.update(str(self.input_shape).encode())
        for name, tensor in sorted(self.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:20]


def paper_config(dataset: str, **overrides: object) -> CSNNConfig:
    """The authors' extractor configuration for ``dataset`` with ``overrides`` (e.g. epochs)."""
    if dataset not in PAPER_CONFIGS:
        raise ValueError(f"no STDP-CSNN configuration for {dataset!r}; valid: {', '.join(PAPER_CONFIGS)}")
    return replace(PAPER_CONFIGS[dataset], **overrides)
