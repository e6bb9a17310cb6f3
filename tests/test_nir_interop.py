"""Our NIR exports run by another framework's NIR reader (Norse's ``from_nir``): the same first spikes,
decisions and TrueNorth class counts. Skipped when ``norse`` (``make setup`` installs it) is missing."""

from __future__ import annotations

import pytest
import torch

from creditlab.models import build_model
from creditlab.spiking.coding import SILENT
from creditlab.spiking.event_layer import first_to_fire
from creditlab.spiking.extractor import STDPCSNN, paper_config

norse_torch = pytest.importorskip("norse.torch")
nir = pytest.importorskip("nir")
spiking_nir = pytest.importorskip("creditlab.spiking.nir_export")


def norse_module(graph: object, tmp_path) -> torch.nn.Module:
    """The graph written to a file, read back with nir and converted by Norse (nothing of ours runs it)."""
    path = tmp_path / "graph.nir"
    nir.write(path, graph)
    return norse_torch.from_nir(nir.read(path))


def run_on_event_grid(module: torch.nn.Module, input_times: torch.Tensor, synapses: str | None = "synapses"
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Step Norse's module through ``event_steps``: (first nonzero-output time per output unit (T_max
    if none), V at that step (the final V if none) from Norse's own state, when ``synapses`` is given)."""
    times, steps = spiking_nir.event_steps(input_times)
    first = potential = previous_v = None
    state = None
    with torch.no_grad():
        for k in range(len(times)):
            out, state = module(steps[k], state)
            if first is None:
                first = torch.full_like(out, SILENT)
                potential = torch.zeros_like(out)
                previous_v = torch.zeros_like(out)
            new = (out > 0) & (first == SILENT)
            first[new] = times[k]
            if synapses is not None:
                before_reset = previous_v + state.cache[synapses]  # V this step, before Norse resets it
                potential[new] = before_reset[new]
                previous_v = state.state["neurons"][0].v
        if synapses is not None:
            silent = first == SILENT
            potential[silent] = previous_v[silent]
    return first, potential


def test_norse_runs_the_classifier_graph_to_the_same_first_spikes_and_decisions(tmp_path) -> None:
    model = build_model("spiking-fc", (40,), 3, neurons_per_class=3, threshold=9.5, seed=4)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(64, 40, generator=g) * 8).floor() / 10  # 8 timestamps: many simultaneous spikes (ties)
    x[torch.rand(64, 40, generator=g) < 0.2] = SILENT
    ours = model.spikes(x)
    module = norse_module(spiking_nir.classifier_graph(model), tmp_path)
    times, potentials = run_on_event_grid(module, x)
    assert torch.equal(times, ours.times)  # exact: the event grid and NIR's strict IF are our semantics
    assert bool((ours.times < SILENT).any()) and bool((ours.times == SILENT).any())
    assert torch.allclose(potentials, ours.potentials, atol=1e-5)
    neuron_class = model.neuron_class
    decided = neuron_class[first_to_fire(times, potentials)]  # the metadata's rule on Norse's outputs
    assert torch.equal(decided, model(x).argmax(1))
    index_only = neuron_class[times.argmin(1)]  # a consumer ignoring the V tie-break (not in the graph)
    assert bool((index_only != decided).any())  # this input has cross-class ties: the tie-break matters


def test_norse_runs_the_extractor_conv_graph_to_the_same_pooled_first_spikes(tmp_path) -> None:
    images = torch.rand(3, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    extractor = STDPCSNN((1, 12, 12), paper_config("fashion-mnist", epochs=1, filters=8, threshold=2.0),
                         torch.Generator().manual_seed(0))
    extractor.fit(images, torch.Generator().manual_seed(0))
    module = norse_module(spiking_nir.extractor_graph(extractor), tmp_path)
    times, _ = run_on_event_grid(module, extractor.input_times(images), synapses=None)
    encoded = extractor.encode(images)
    assert torch.equal(times, encoded)
    assert bool((encoded < SILENT).any())


def test_norse_runs_the_truenorth_graph_to_the_same_class_counts(tmp_path) -> None:
    from creditlab.neuromorphic.nir_export import to_nir

    model = build_model("truenorth", (1, 8, 8), 3, window=4, stride=4, hidden_neurons=5, neurons_per_class=2,
                        init_seed=3)
    network = model.sample(2, torch.Generator().manual_seed(5))
    images = torch.rand(32, 64, generator=torch.Generator().manual_seed(6))
    spikes = network.input_spikes(images, torch.Generator().manual_seed(7))
    counts, _ = network.run(spikes)
    assert bool(counts.sum() > 0)
    for copy in range(2):
        module = norse_module(to_nir(network, copy), tmp_path)
        with torch.no_grad():
            out, _ = module(spikes[copy].float())  # one step per image (one tick), fresh state
        assert torch.equal(out.float(), counts[copy])
