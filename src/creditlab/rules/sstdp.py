"""SSTDP (Liu et al. 2021, as implemented by Goupy et al.): S2-STDP's desired times used as bounds.

A target neuron is pushed only if it fires after ``t_base - g_t`` and a non-target only if it fires
before ``t_base + g_nt``; a neuron already on the right side of its bound is left alone.
"""

from __future__ import annotations

from creditlab.rules import register_rule
from creditlab.rules.base import DemoSetting
from creditlab.rules.s2stdp import _TimeTargetRule
from creditlab.spiking.supervised import stdp_optimizer_requirement


@register_rule("sstdp")
class SSTDP(_TimeTargetRule):
    name = "sstdp"
    optimizer_requirement = stdp_optimizer_requirement("sstdp")
    description = "SSTDP: S2-STDP with time ranges (only wrong-side neurons move; spiking classifier; NCG option)"
    ranges = True
    # latency-coded pixels: threshold 35 and gap 0.05 (see s2stdp); measured 0.68 after 1 epoch x 3000 images
    demo = DemoSetting(floor=0.55, model="spiking-fc", model_options={"threshold": 35.0, "weight_norm": True},
                       rule_options={"t_gap": 0.05, "a_plus": 0.01, "a_minus": -0.05})
