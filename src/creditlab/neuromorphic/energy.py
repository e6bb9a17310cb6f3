"""Energy per image of a sampled TrueNorth network: explicit models, every constant with its source.

TrueNorth runs in discrete ticks; the networks here classify one image per tick (each layer of cores
integrates once and fires). Three models, none of them the paper's accounting:

* ``chip-average`` (per core, one tick): ``E = cores x P_chip / 4096 x 1 tick`` with the whole
  chip's 63 mW (Merolla et al. 2014) spread evenly over its cores. Nothing from Esser et al. 2015
  enters it.
* ``paper-calibrated`` (per core): ``E = cores x (0.268 uJ / 5 cores)``, the paper's ensemble-1
  energy over a 5-core network. The 5 cores are the pytruenorth / RANC network, *not verified* to be
  the paper's. Under that assumption the paper's ensemble-64 energy (108 uJ) implies 31.5 cores per
  member, so this model reproduces the paper's ensemble-64 figure only for a member of ~31.5 cores;
  it predicts nothing about a network of another size.
* ``per-event`` (events the run counted, ``SpikeCounts``): ``E = synaptic events x E_syn + neuron
  spikes x E_spike``: active energy only, no static (leakage) power. ``E_syn`` = 26 pJ, the figure
  quoted for TrueNorth (Merolla et al. 2014; not re-read here: unverified); no per-spike figure could
  be read (``SPIKE_ENERGY``: not available), so spikes are charged nothing and the result is a
  lower bound on the active energy.

**The paper's accounting is not available.** Esser et al. 2015 give 0.268 uJ (one copy) and 108 uJ
(64 copies) per image, but neither the ticks per classification nor the power assumed could be read
(only the abstract and first page of the paper are readable here). The two figures cannot both be
one 1-ms tick of the chip-average model: 108 uJ is more than the whole chip spends in one tick
(63 uJ), and 0.268 uJ is 3.5 core-ticks of it for 5 cores (:func:`paper_implied_core_ticks`). So no
model here is the paper's quantity, and ours-vs-paper energy ratios are no evidence of a saving.

Ensemble copies run in parallel on their own cores in the same tick, so an ensemble of N copies of a
k-core network costs ``N k e_core`` under the per-core models.
"""

from __future__ import annotations

from dataclasses import dataclass

from creditlab.papers import esser2015


@dataclass(frozen=True)
class Constant:
    """A number the energy model uses, with where it comes from and how sure that is."""

    value: float
    unit: str
    source: str
    status: str  # "verified" | "secondary" | "unverified" | "derived"


CHIP_POWER = Constant(0.063, "W", "Merolla et al., Science 345:668 (2014), abstract: 63 mW running a "
                      "400x240-pixel video at 30 frames/s", "verified")
CHIP_CORES = Constant(4096, "cores", "Merolla et al. 2014 abstract; Esser et al. 2015 §2", "verified")
TICK = Constant(1e-3, "s", "TrueNorth's nominal 1 kHz tick (Merolla et al. 2014; not re-read here)", "secondary")
PAPER_ENSEMBLE1_ENERGY = Constant(esser2015.ENERGY_UJ[1].value * 1e-6, "J", esser2015.ENERGY_UJ[1].source
                                  + " (ensemble of 1, 92.7%); " + esser2015.ENERGY_UJ[1].note,
                                  esser2015.ENERGY_UJ[1].status)
PAPER_ENSEMBLE64_ENERGY = Constant(esser2015.ENERGY_UJ[64].value * 1e-6, "J", esser2015.ENERGY_UJ[64].source
                                   + " (ensemble of 64, 99.42%); " + esser2015.ENERGY_UJ[64].note,
                                   esser2015.ENERGY_UJ[64].status)
PAPER_ENSEMBLE1_CORES = Constant(5, "cores", "pytruenorth FrameClassifier5Core / RANC tealayers; the paper's "
                                 "own core count is not known here", "unverified")

SYNAPTIC_EVENT_ENERGY = Constant(26e-12, "J", "26 pJ per synaptic event, the figure quoted for TrueNorth from Merolla "
                                 "et al., Science 345:668 (2014); not re-read here", "unverified")
SPIKE_ENERGY = Constant(0.0, "J", "no per-spike (routing) energy of TrueNorth could be read: spikes are charged 0, "
                        "so per-event energies are lower bounds on the active energy", "not available")

ENERGY_MODELS = ("chip-average", "paper-calibrated")
EVENT_MODELS = ("per-event",)


def energy_per_core_image(model: str) -> float:
    """Joules one core spends on one image under ``model`` (see the module docstring)."""
    if model == "chip-average":
        return CHIP_POWER.value / CHIP_CORES.value * TICK.value
    if model == "paper-calibrated":
        return PAPER_ENSEMBLE1_ENERGY.value / PAPER_ENSEMBLE1_CORES.value
    raise ValueError(f"unknown energy model {model!r}; valid: {', '.join(ENERGY_MODELS)}")


def energy_per_image_uj(cores: int, model: str) -> float:
    """Microjoules per image for a network (or ensemble) occupying ``cores`` cores (a per-core model)."""
    from creditlab.models.truenorth import ensemble_copies

    ensemble_copies(cores, "cores", "cores")
    return cores * energy_per_core_image(model) * 1e6


def per_event_energy_uj(events: dict[str, float]) -> float:
    """Microjoules per image of the ``per-event`` model from a run's events per image (``SpikeCounts``
    fields ``synaptic_events`` and ``neuron_spikes``, summed over the copies)."""
    for key in ("synaptic_events", "neuron_spikes"):
        if not events.get(key, -1) >= 0:
            raise ValueError(f"per-event energy needs a non-negative {key!r} count, got {events.get(key)!r}")
    joules = events["synaptic_events"] * SYNAPTIC_EVENT_ENERGY.value + events["neuron_spikes"] * SPIKE_ENERGY.value
    return joules * 1e6


def paper_implied_core_ticks(ensemble: int = 1, cores: int = 5) -> float:
    """Core-ticks of the chip-average model the paper's energy for ``ensemble`` buys, per image: how far
    its accounting is from one tick per image (with ``cores`` cores, 3.5 for 5 cores at ensemble 1)."""
    return esser2015.ENERGY_UJ[ensemble].value * 1e-6 / energy_per_core_image("chip-average") / cores


def paper_implied_cores_per_member(ensemble: int = 64) -> float:
    """Cores per member the paper's ensemble-64 energy implies under the paper-calibrated model (31.5):
    the only member size for which that model matches the paper's ensemble-64 figure."""
    return PAPER_ENSEMBLE64_ENERGY.value / ensemble / energy_per_core_image("paper-calibrated")


def energy_table(cores_per_copy: int, ensemble_sizes: tuple[int, ...]) -> dict[int, dict[str, float]]:
    """{N: {"cores": N k, "<model>_uj": ...}} for every ensemble size N of a ``cores_per_copy``-core network;
    ValueError (a CreditlabError) for a size or core count that is not a positive integer."""
    from creditlab.models.truenorth import ensemble_copies

    ensemble_copies(cores_per_copy, "cores per copy", "cores")
    for n in ensemble_sizes:
        ensemble_copies(n, "ensemble size")
    return {n: {"cores": n * cores_per_copy,
                **{f"{m.replace('-', '_')}_uj": energy_per_image_uj(n * cores_per_copy, m) for m in ENERGY_MODELS}}
            for n in ensemble_sizes}


def constants() -> dict[str, dict[str, object]]:
    """Every constant of the model, JSON-ready, for records and the docs."""
    named = {"chip_power": CHIP_POWER, "chip_cores": CHIP_CORES, "tick": TICK,
             "paper_ensemble1_energy": PAPER_ENSEMBLE1_ENERGY, "paper_ensemble64_energy": PAPER_ENSEMBLE64_ENERGY,
             "paper_ensemble1_cores": PAPER_ENSEMBLE1_CORES, "synaptic_event_energy": SYNAPTIC_EVENT_ENERGY,
             "spike_energy": SPIKE_ENERGY}
    return {k: {"value": c.value, "unit": c.unit, "source": c.source, "status": c.status} for k, c in named.items()}
