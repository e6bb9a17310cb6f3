"""NIR round trip of the classifier and the extractor's conv layer (skipped without ``nir``), and
the NeuroBench-style cost figures on a hand-counted case."""

from __future__ import annotations

import pytest
import torch

from creditlab.models import build_model
from creditlab.spiking.coding import SILENT
from creditlab.spiking.cost import inference_cost
from creditlab.spiking.extractor import STDPCSNN, paper_config


def test_cost_counts_by_hand() -> None:
    x = torch.tensor([[0.1, 0.5, SILENT, 0.3]])  # 3 input spikes
    out = torch.tensor([[0.3, SILENT]])  # neuron 0 fired at 0.3 (saw 0.1 and 0.3), neuron 1 silent (saw all 3)
    cost = inference_cost(x, out)
    assert cost["dense_acs"] == 6 and cost["event_acs"] == 5 and cost["macs"] == 0
    assert cost["input_sparsity"] == 0.25 and cost["activation_sparsity"] == 0.5 and cost["output_spikes"] == 1


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
