"""NIR round trip of the classifier and the extractor's conv layer (skipped without ``nir``), and
the NeuroBench-style cost figures on a hand-counted case."""

from __future__ import annotations

import pytest
import torch

from creditlab.models import build_model
from creditlab.spiking import cost
from creditlab.spiking.coding import SILENT
from creditlab.spiking.extractor import STDPCSNN, paper_config


@pytest.fixture(params=["neurobench", "definitions"])
def counter(request, monkeypatch) -> str:
    """Count with the neurobench package (skipped without it) and with the built-in definitions."""
    if request.param == "neurobench":
        pytest.importorskip("neurobench")
    else:
        monkeypatch.setattr(cost, "_neurobench", lambda: None)
    return request.param


def test_cost_counts_by_hand(counter: str) -> None:
    # classifier: 3 input spikes (inputs 0, 1, 3); nonzero weights: neuron 0 <- 0, 2, 3; neuron 1 <- 2, 3
    weight = torch.tensor([[1.0, 0.0, 0.5, 0.2], [0.0, 0.0, 0.3, 1.0]])
    x = torch.tensor([[0.1, 0.5, SILENT, 0.3]])
    out = torch.tensor([[0.2, SILENT]])  # neuron 0 fires at 0.2 (has seen input 0), neuron 1 stays silent
    fc = cost.classifier_cost(x, weight, out)
    # effective ACs: neuron 0 gets inputs 0 and 3 (input 1's weight is 0), neuron 1 input 3: 3; dense: 2 x 4
    assert fc["effective_acs"] == 3 and fc["dense"] == 8 and fc["effective_macs"] == 0
    assert fc["event_acs"] == 2  # neuron 0 stops after input 0; silent neuron 1 integrates input 3
    assert fc["activation_sparsity"] == 0.5 and fc["spikes"] == 1 and fc["input_sparsity"] == 0.25
    # conv: one 3x3 channel, spikes on the diagonal, one 2x2 filter [[1, 0], [0, 1]] -> 2x2 outputs
    conv = torch.nn.Conv2d(1, 1, 2, bias=False)
    conv.weight.data = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    times = torch.full((1, 1, 3, 3), SILENT)
    times[0, 0, [0, 1, 2], [0, 1, 2]] = 0.4
    maps = torch.full((1, 1, 2, 2), SILENT)
    maps[0, 0, 0, 0] = 0.5
    layer = cost.layer_cost(conv, times, maps)
    # windows (0,0) and (1,1) each see two diagonal spikes on the two nonzero weights; (0,1), (1,0) none
    assert layer["effective_acs"] == 4 and layer["dense"] == 16 and layer["activation_sparsity"] == 0.75
    total = cost.pipeline_cost({"extractor": layer, "classifier": fc})
    assert total["effective_acs"] == 7 and total["dense"] == 24
    assert total["activation_sparsity"] == pytest.approx(1 - 2 / 6)  # pooled over 4 + 2 neuron outputs
    assert total["counted_by"].startswith("neurobench" if counter == "neurobench" else "creditlab")


def test_extractor_cost_counts_its_conv_layer() -> None:
    images = torch.rand(2, 1, 10, 10, generator=torch.Generator().manual_seed(1))
    extractor = STDPCSNN((1, 10, 10), paper_config("fashion-mnist", epochs=1, filters=4, threshold=2.0),
                         torch.Generator().manual_seed(0))
    extractor.fit(images, torch.Generator().manual_seed(0))
    counted = cost.extractor_cost(extractor, images)
    assert counted["dense"] == 2 * 5 * 5 * 4 * 6 * 6  # C k k x F x H_out x W_out, every synapse
    assert 0 < counted["effective_acs"] <= counted["dense"]
    assert counted["neuron_outputs"] == 4 * 6 * 6


def test_classifier_round_trip(tmp_path) -> None:
    nir_export = pytest.importorskip("creditlab.spiking.nir_export")
    pytest.importorskip("nir")
    model = build_model("spiking-fc", (30,), 3, neurons_per_class=2, threshold=3.0, seed=4)
    x = torch.rand(16, 30, generator=torch.Generator().manual_seed(0))
    x[x > 0.8] = SILENT
    path = tmp_path / "classifier.nir"
    nir_export.write(nir_export.classifier_graph(model), path)
    graph = nir_export.read(path)
    assert torch.equal(nir_export.first_spike_times(graph, x), model.spikes(x).times)
    assert graph.nodes["neurons"].metadata["neuron_class"].tolist() == model.neuron_class.tolist()


def test_extractor_conv_round_trip(tmp_path) -> None:
    nir_export = pytest.importorskip("creditlab.spiking.nir_export")
    pytest.importorskip("nir")
    images = torch.rand(3, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    extractor = STDPCSNN((1, 12, 12), paper_config("fashion-mnist", epochs=1, filters=8, threshold=2.0),
                         torch.Generator().manual_seed(0))
    extractor.fit(images, torch.Generator().manual_seed(0))
    path = tmp_path / "conv.nir"
    nir_export.write(nir_export.extractor_graph(extractor), path)
    times = nir_export.first_spike_times(nir_export.read(path), extractor.input_times(images))
    assert torch.equal(times, extractor.encode(images))
    assert bool((times < SILENT).any())  # something fired: the comparison is not all-silent


def test_missing_nir_is_a_clear_error(monkeypatch) -> None:
    import sys

    from creditlab.errors import CreditlabError
    from creditlab.spiking import nir_export

    monkeypatch.setitem(sys.modules, "nir", None)
    with pytest.raises(CreditlabError, match="pip install"):
        nir_export.classifier_graph(build_model("spiking-fc", (4,), 2))
