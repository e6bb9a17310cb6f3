"""``truenorth``: a TrueNorth core-constrained network trained on probabilities (Esser et al. 2015).

Two layers of cores (see :mod:`creditlab.neuromorphic`):

1. one core per ``window x window`` image window (placed at ``stride``; 16 x 16 = 256 axons), each
   with ``hidden_neurons`` neurons;
2. output cores of ``neurons_per_class x classes`` neurons; when the first layer is wider than 256
   its outputs are split over ``ceil(width / 256)`` output cores (interleaved), each covering every
   class, and a class's score sums its neurons over all output cores.

Defaults give the 5-core network (4 windows at stride 12, 64 neurons each, one output core of 250
neurons, 25 per class). ``stride=4, hidden_neurons=224`` gives 16 + 14 = 30 cores.

Training (``forward``) runs the expectation network: pixels in [0, 1] are spike probabilities, every
neuron outputs its Gaussian-approximated spike probability, and the logits are ``readout_gain`` times
the mean spike probability of each class's output neurons. Deployment samples binary crossbars
(:mod:`creditlab.neuromorphic.sampling`); :meth:`TrueNorthNet.evaluation_variants` gives the
``expectation`` network and ``ensemble-N`` of N sampled copies, with the same readout on spike counts.
The trainer evaluates every variant every epoch, so the model option ``ensemble_sizes`` (default
``[1]``: ``expectation`` and ``ensemble-1``) keeps that cheap; a sweep over 1, 2, 4, ..., 64 copies
is ``ensemble_sizes=[1,2,4,8,16,32,64]`` (or :func:`creditlab.neuromorphic.evaluation.ensemble_sweep`
once after training, as ``truenorth-mnist`` does). Every ``ensemble-N`` call adds its event counts to
:meth:`TrueNorthNet.take_event_counts`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from creditlab.errors import CreditlabError
from creditlab.models import register_model
from creditlab.neuromorphic.cores import AXON_TYPES, CORE_NEURONS, WEIGHT_RANGE, CoreLayer, core_count
from creditlab.neuromorphic.sampling import SampledNetwork, SpikeCounts, sample_network
from creditlab.neuromorphic.topology import interleaved_partitions, window_sources
from creditlab.options import Option, OptionValueError, resolve
from creditlab.seeding import seeded_generator

#: the sweep of ensemble sizes the paper's table runs (accuracy vs copies)
SWEEP_ENSEMBLE_SIZES = (1, 2, 4, 8, 16, 32, 64)
#: the sizes evaluated every epoch by default (all of them every epoch is costly)
DEFAULT_ENSEMBLE_SIZES = (1,)
TYPE_WEIGHT_SCHEMES = ("balanced-signs",)


class TrueNorthOptionError(CreditlabError, ValueError):
    """A ``truenorth`` model option outside what the method or the hardware allows."""


class TrueNorthInputError(CreditlabError, ValueError):
    """Input a ``truenorth`` network cannot read: wrong shape, pixels outside [0, 1], a bad ensemble size."""


#: how to get pixels in [0, 1]: the ``unit`` normalization, the truenorth model's registered default
UNIT_PIXELS_HINT = ("load the data with normalization 'unit' (creditlab.data.load_dataset(..., normalization='unit'); "
                    "creditlab train and truenorth-mnist use it for the truenorth model by default)")


def ensemble_copies(copies: object, what: str = "ensemble size", unit: str = "sampled copies") -> int:
    """``copies`` as a positive int, or TrueNorthInputError naming ``what`` and what is valid."""
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise TrueNorthInputError(f"{what} must be a positive integer number of {unit} (1, 2, 64, ...), "
                                  f"got {copies!r}")
    return copies


def parse_ensemble_variant(name: str) -> int:
    """The N of an evaluation variant named ``ensemble-N`` (N a positive integer), or TrueNorthInputError."""
    prefix = "ensemble-"
    digits = name[len(prefix):] if isinstance(name, str) and name.startswith(prefix) else ""
    if not digits.isdigit() or int(digits) < 1:
        raise TrueNorthInputError(f"variant name {name!r}: valid names are 'expectation' and 'ensemble-N' with N a "
                                  "positive integer (e.g. ensemble-1, ensemble-64)")
    return int(digits)


def _type_weights(scheme: str | tuple[int, ...], cores: int, neurons: int, generator: torch.Generator
                  ) -> torch.Tensor:
    """(cores, neurons, 4) integer weights per axon type.

    ``balanced-signs``: each neuron gets its own random permutation of (+1, +1, -1, -1), so every
    deployed synapse is trinary and each neuron can excite and inhibit. A tuple of 4 integers gives
    every neuron those weights (e.g. (1, -1, 2, -2)).
    """
    if scheme == "balanced-signs":
        base = torch.tensor([1.0, 1.0, -1.0, -1.0])
        order = torch.rand(cores, neurons, AXON_TYPES, generator=generator).argsort(-1)
        return base[order]
    return torch.tensor([float(w) for w in scheme]).expand(cores, neurons, AXON_TYPES).clone()


class TrueNorthNet(nn.Module):
    """Window cores -> output cores; see the module docstring. Input (batch, 1, H, W) in [0, 1]."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, window: int, stride: int,
                 hidden_neurons: int, neurons_per_class: int, threshold: int, type_weights: str | tuple[int, ...],
                 readout_gain: float, ensemble_sizes: tuple[int, ...], variance_floor: float,
                 generator: torch.Generator) -> None:
        super().__init__()
        _channels, height, width = input_shape
        self.num_classes = num_classes
        self.input_shape = tuple(int(d) for d in input_shape)
        self.readout_gain = float(readout_gain)
        self.ensemble_sizes = tuple(int(n) for n in ensemble_sizes)
        sources = window_sources(height, width, window, stride)
        first = self._layer(height * width, sources, hidden_neurons, threshold, type_weights, variance_floor,
                            generator)
        partitions = interleaved_partitions(first.out_features)
        per_core = neurons_per_class * num_classes
        second = self._layer(first.out_features, partitions, per_core, threshold, type_weights, variance_floor,
                             generator)
        self.layers = nn.ModuleList([first, second])
        output_class = (torch.arange(per_core) // neurons_per_class).repeat(second.cores)
        self.register_buffer("output_class", output_class)
        self.neurons_per_class_total = neurons_per_class * second.cores
        self._sample_cache: tuple[tuple[Any, ...], SampledNetwork] | None = None
        self._events: dict[str, tuple[int, dict[str, float]]] = {}  # variant -> (images, event sums)

    @staticmethod
    def _layer(in_features: int, sources: torch.Tensor, neurons: int, threshold: int,
               type_weights: str | tuple[int, ...], variance_floor: float, generator: torch.Generator) -> CoreLayer:
        cores, axons = sources.shape
        axon_types = torch.randint(0, AXON_TYPES, (cores, axons), generator=generator)
        weights = _type_weights(type_weights, cores, neurons, generator)
        return CoreLayer(in_features, sources, neurons, axon_types, weights, threshold, generator, variance_floor)

    @property
    def cores(self) -> int:
        """Cores one copy of this network occupies."""
        return core_count(self)

    def class_scores(self, output: torch.Tensor) -> torch.Tensor:
        """(..., output neurons) spikes or probabilities -> (..., classes) mean over each class's neurons."""
        onehot = torch.nn.functional.one_hot(self.output_class, self.num_classes).to(output.dtype)
        return output @ onehot / self.neurons_per_class_total

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` flattened to (batch, pixels) after checking it is (batch, *input_shape) with pixels in
        [0, 1] (spike probabilities); TrueNorthInputError otherwise."""
        if x.dim() != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            raise TrueNorthInputError(f"this truenorth network was built for input (batch, "
                                      f"{', '.join(map(str, self.input_shape))}); got {tuple(x.shape)}")
        p = x.flatten(1)
        if p.numel():
            low, high = torch.aminmax(p)
            if not (float(low) >= 0.0 and float(high) <= 1.0):  # NaN fails too
                raise TrueNorthInputError(f"truenorth reads pixels as spike probabilities in [0, 1]; got values in "
                                          f"[{float(low):.3g}, {float(high):.3g}]: {UNIT_PIXELS_HINT}")
        return p

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        p = self.check_input(x)
        for layer in self.layers:
            p = layer(p)
        return self.readout_gain * self.class_scores(p)

    # -- deployment ------------------------------------------------------------------------------
    def sample(self, copies: int, generator: torch.Generator) -> SampledNetwork:
        """``copies`` independently sampled binary networks (see ``sample_network``)."""
        return sample_network(self, copies, generator)

    def _weights_key(self) -> tuple[int, ...]:
        return tuple(p._version for p in self.parameters()) + tuple(id(p) for p in self.parameters())

    def ensemble_run(self, x: torch.Tensor, copies: int, generator: torch.Generator
                     ) -> tuple[torch.Tensor, SpikeCounts]:
        """Logits and per-image event counts of an ensemble of ``copies`` sampled networks on a batch.

        The crossbars come from ``generator.initial_seed()`` (so every batch evaluated with the same
        generator sees the same sampled networks, as a deployed chip would), cached until a parameter
        changes; the input spikes are drawn from ``generator`` itself. ``x``: (batch, *input_shape) in
        [0, 1], else TrueNorthInputError (as for ``forward``); ``copies``: a positive integer.
        """
        copies = ensemble_copies(copies, "copies")
        self.check_input(x)
        key = (generator.initial_seed(), copies, str(x.device), self._weights_key())
        if self._sample_cache is None or self._sample_cache[0] != key:
            crossbar_generator = seeded_generator(generator.initial_seed(), "crossbar", device=x.device)
            self._sample_cache = (key, self.sample(copies, crossbar_generator))
        network = self._sample_cache[1]
        counts, events = network.run(network.input_spikes(x, generator))
        return self.readout_gain * counts.mean(0) / self.neurons_per_class_total, events

    def ensemble_logits(self, x: torch.Tensor, copies: int, generator: torch.Generator) -> torch.Tensor:
        """Logits of an ensemble of ``copies`` sampled networks (see :meth:`ensemble_run`); its event
        counts are added to ``ensemble-<copies>``'s tally (:meth:`take_event_counts`)."""
        copies = ensemble_copies(copies, "copies")
        logits, events = self.ensemble_run(x, copies, generator)
        images, sums = self._events.get(f"ensemble-{copies}", (0, {}))
        batch = len(x)
        self._events[f"ensemble-{copies}"] = (images + batch, {k: sums.get(k, 0.0) + v * batch
                                                               for k, v in events.as_dict().items()})
        return logits

    def take_event_counts(self) -> dict[str, dict[str, float]]:
        """Events per image (``SpikeCounts`` fields, over the copies) of every ``ensemble-N`` evaluated
        since the last call, averaged over the images it saw; the tally starts again from zero."""
        taken = {name: {k: v / images for k, v in sums.items()} for name, (images, sums) in self._events.items()}
        self._events = {}
        return taken

    def release_samples(self) -> None:
        """Drop the cached sampled copies (they are redrawn from the same seed when needed)."""
        self._sample_cache = None

    def evaluation_variants(self) -> dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]]:
        """``expectation`` (the trained probabilistic network) and ``ensemble-N`` for each ensemble size."""
        variants: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
            "expectation": lambda x, _generator: self(x)}
        for n in self.ensemble_sizes:
            variants[f"ensemble-{n}"] = (lambda x, generator, n=n: self.ensemble_logits(x, n, generator))
        return variants


def _check_type_weights(scheme: Any) -> None:
    """``type_weights``: a scheme name or AXON_TYPES integers in WEIGHT_RANGE (ValueError otherwise)."""
    if isinstance(scheme, list | tuple):
        if len(scheme) != AXON_TYPES or not all(isinstance(w, int) and not isinstance(w, bool)
                                                and WEIGHT_RANGE[0] <= w <= WEIGHT_RANGE[1] for w in scheme):
            raise ValueError(f"type_weights must be {AXON_TYPES} integers in {WEIGHT_RANGE}")
    elif scheme not in TYPE_WEIGHT_SCHEMES:
        raise ValueError(f"valid: {', '.join(TYPE_WEIGHT_SCHEMES)} or a list of {AXON_TYPES} integers")


#: the model options (``--model-opt KEY=VALUE``), each with the values it takes
OPTIONS: dict[str, Option] = {
    "window": Option(16, "one first-layer core per window x window pixels (w*w <= 256 axons)", minimum=1),
    "stride": Option(12, "offset between windows", minimum=1),
    "hidden_neurons": Option(64, "neurons per first-layer core", minimum=1, maximum=CORE_NEURONS),
    "neurons_per_class": Option(25, "output neurons per class per output core (x classes <= 256)", minimum=1),
    "threshold": Option(1, "integer firing threshold", minimum=1),
    "type_weights": Option("balanced-signs", "the weight of each axon type", type=object, check=_check_type_weights,
                           what=f"one of {', '.join(map(repr, TYPE_WEIGHT_SCHEMES))} or a list of {AXON_TYPES} "
                                f"integers in [{WEIGHT_RANGE[0]}, {WEIGHT_RANGE[1]}]"),
    "readout_gain": Option(10.0, "logit scale", above=0),
    "ensemble_sizes": Option(list(DEFAULT_ENSEMBLE_SIZES), "the ensemble-N variants evaluated every epoch "
                             "([] = expectation only)", minimum=1, single=True, non_empty=False),
    "variance_floor": Option(1e-2, "floor of the Gaussian approximation's variance", above=0),
    "init_seed": Option(None, "seed of the wiring, axon types and initial weights [default: the run's seed]",
                        type=int, unbounded=True),
}


def _check_options(input_shape: tuple[int, ...], num_classes: int, options: dict[str, Any]) -> dict[str, Any]:
    try:
        o = resolve(OPTIONS, options, "model 'truenorth'", flag="option")
    except OptionValueError as error:
        raise TrueNorthOptionError(str(error)) from None

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise TrueNorthOptionError(f"truenorth option {what}")

    need(len(input_shape) == 3 and input_shape[0] == 1,
         f"input: one channel of pixels (C=1, H, W) is needed, got shape {tuple(input_shape)}")
    side = min(input_shape[1:])
    need(o["window"] ** 2 <= 256 and o["window"] <= side,
         f"window={o['window']}: a window of w x w pixels needs w*w <= 256 axons and w <= {side}")
    need(o["neurons_per_class"] * num_classes <= CORE_NEURONS,
         f"neurons_per_class={o['neurons_per_class']} x {num_classes} classes exceeds {CORE_NEURONS} neurons per core")
    if isinstance(o["type_weights"], list):
        o["type_weights"] = tuple(o["type_weights"])
    sizes = o["ensemble_sizes"]
    o["ensemble_sizes"] = tuple(dict.fromkeys([sizes] if isinstance(sizes, int) else sizes))
    return o


@register_model("truenorth", "TrueNorth cores trained on probabilities (Esser 2015); 5 cores by default",
                options=OPTIONS,
                epochs=20, lr=0.1, optimizer="sgd", momentum=0.9, batch_size=100, normalization="unit")
def build_truenorth(input_shape: tuple[int, ...], num_classes: int, **options: Any) -> TrueNorthNet:
    """Build a core-constrained network; options: see ``OPTIONS`` (``init_seed`` None = torch.initial_seed())."""
    o = _check_options(input_shape, num_classes, options)
    seed = torch.initial_seed() if o["init_seed"] is None else int(o["init_seed"])
    generator = seeded_generator(seed, "truenorth-init")
    return TrueNorthNet(tuple(input_shape), num_classes, o["window"], o["stride"], o["hidden_neurons"],
                        o["neurons_per_class"], o["threshold"], o["type_weights"], o["readout_gain"],
                        o["ensemble_sizes"], o["variance_floor"], generator)
