"""Energy per image of a sampled TrueNorth network: an explicit model, every constant with its source.

TrueNorth runs in discrete ticks; the networks here classify one image per tick (each layer of cores
integrates once and fires), so at the chip's nominal tick the time per image is one tick. Energy is
charged per occupied core for the time of one image::

    E_image = cores x e_core,        e_core = P_core x T_image

with two documented choices of ``e_core``:

* ``chip-average``: ``P_core`` = the whole chip's measured power spread evenly over its cores
  (63 mW / 4096 cores, Merolla et al. 2014), ``T_image`` = 1 tick = 1 ms. An independent estimate:
  nothing from Esser et al. 2015 enters it.
* ``paper-calibrated``: ``e_core`` = the paper's ensemble-1 energy over the cores of that network
  (0.268 uJ / 5 cores). The 5 cores are the pytruenorth / RANC network, *not verified* to be the
  paper's; given that, the model predicts the paper's other end (108 uJ at ensemble 64) without
  using it.

Ensemble copies run in parallel on their own cores in the same tick, so an ensemble of N copies of a
k-core network costs ``N k e_core``. Event counts (synaptic accumulates, spikes) are reported beside
the energy (``SpikeCounts``) so another model (energy per event) can be applied to the same run.
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

ENERGY_MODELS = ("chip-average", "paper-calibrated")


def energy_per_core_image(model: str) -> float:
    """Joules one core spends on one image under ``model`` (see the module docstring)."""
    if model == "chip-average":
        return CHIP_POWER.value / CHIP_CORES.value * TICK.value
    if model == "paper-calibrated":
        return PAPER_ENSEMBLE1_ENERGY.value / PAPER_ENSEMBLE1_CORES.value
    raise ValueError(f"unknown energy model {model!r}; valid: {', '.join(ENERGY_MODELS)}")


def energy_per_image_uj(cores: int, model: str) -> float:
    """Microjoules per image for a network (or ensemble) occupying ``cores`` cores."""
    return cores * energy_per_core_image(model) * 1e6


def paper_implied_cores_per_member(ensemble: int = 64) -> float:
    """Cores per member the paper's ensemble-64 energy implies under the paper-calibrated model."""
    return PAPER_ENSEMBLE64_ENERGY.value / ensemble / energy_per_core_image("paper-calibrated")


def energy_table(cores_per_copy: int, ensemble_sizes: tuple[int, ...]) -> dict[int, dict[str, float]]:
    """{N: {"cores": N k, "<model>_uj": ...}} for every ensemble size N of a ``cores_per_copy``-core network."""
    return {n: {"cores": n * cores_per_copy,
                **{f"{m.replace('-', '_')}_uj": energy_per_image_uj(n * cores_per_copy, m) for m in ENERGY_MODELS}}
            for n in ensemble_sizes}


def constants() -> dict[str, dict[str, object]]:
    """Every constant of the model, JSON-ready, for records and the docs."""
    named = {"chip_power": CHIP_POWER, "chip_cores": CHIP_CORES, "tick": TICK,
             "paper_ensemble1_energy": PAPER_ENSEMBLE1_ENERGY, "paper_ensemble64_energy": PAPER_ENSEMBLE64_ENERGY,
             "paper_ensemble1_cores": PAPER_ENSEMBLE1_CORES}
    return {k: {"value": c.value, "unit": c.unit, "source": c.source, "status": c.status} for k, c in named.items()}
