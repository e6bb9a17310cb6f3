"""e-prop (Bellec, Scherr, Subramoney, Hajek, Salaj, Legenstein & Maass 2020, Nat. Commun. 11:3625):
the numbers its reproductions compare with, read from the authors' code (IGITUGraz/eligibility_propagation)
and from NEST's e-prop test suite (nest/nest-simulator).
"""

from __future__ import annotations

from creditlab.papers.value import PaperValue

_TUTORIAL = ("IGITUGraz/eligibility_propagation, Figure_3_and_S7_e_prop_tutorials: README.md and "
             "tutorial_evidence_accumulation_with_alif.py (flags n_batch 64, learning_rate 0.005, stop_crit 0.07)")

#: evidence accumulation: training stops when the validation error (1 batch, confirmed on 8 more) is below this
EVIDENCE_STOP_ERROR = PaperValue(0.07, source=_TUTORIAL, note="the tutorial's stopping criterion (stop_crit)",
                                 setting="batch 64, Adam lr 0.005, 50 LIF + 50 ALIF, 7 cues, 2250 ms")
#: "The early stopping criterion should be reached after around 200 - 500 iterations" (README; e-prop, random)
EVIDENCE_ITERATIONS = PaperValue(500.0, status="verified", source=_TUTORIAL,
                                 note="upper end of 'around 200 - 500 iterations' (README, random e-prop, batch 32)",
                                 setting="-feedback random -eprop -eprop_impl hardcoded -n_batch 32")

_NEST_TEST = ("nest/nest-simulator testsuite/pytests/synapses/test_eprop_plasticity.py, test_eprop_regression "
              "(commit 84b06d8d44; references from NEST@9b65de4bf)")
#: NEST's reference losses of its sine-wave regression (100 in, 100 rec, 1 out, 5 iterations), per neuron model
NEST_SINE_LOSSES: dict[str, tuple[float, ...]] = {
    "eprop_iaf": (0.14000491891386, 0.28735818029752, 0.22263713699860, 0.23015072431384, 0.17565248170694),
    "eprop_iaf_adapt": (0.02242584487453, 0.01916753791522, 0.00571493935652, 0.00037875376195,
                        0.00037823157578),
}
NEST_SINE_SOURCE = _NEST_TEST

__all__ = ["EVIDENCE_ITERATIONS", "EVIDENCE_STOP_ERROR", "NEST_SINE_LOSSES", "NEST_SINE_SOURCE"]
