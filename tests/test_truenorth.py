"""TrueNorth core-constrained networks: the Gaussian approximation, sampling, constraints, ensembles, NIR."""

from __future__ import annotations

import itertools

import pytest
import torch

from creditlab.data import Dataset, load_dataset
from creditlab.errors import CreditlabError, IncompatibleModelError
from creditlab.experiments.truenorth import EnsembleEvents
from creditlab.models import apply_constraints, build_model
from creditlab.models.truenorth import TrueNorthInputError, TrueNorthOptionError, parse_ensemble_variant
from creditlab.neuromorphic.constraints import CoreConstraintError, check_core_constraints, core_violations
from creditlab.neuromorphic.energy import (
    CHIP_CORES,
    CHIP_POWER,
    TICK,
    energy_per_image_uj,
    energy_table,
    paper_implied_core_ticks,
    paper_implied_cores_per_member,
    per_event_energy_uj,
)
from creditlab.neuromorphic.evaluation import ensemble_sweep
from creditlab.neuromorphic.gaussian import input_moments, spike_probability
from creditlab.rules import build_rule
from creditlab.train import TrainConfig, fit

TINY = {"window": 4, "stride": 4, "hidden_neurons": 5, "neurons_per_class": 2, "init_seed": 3}


def tiny_model(**options: object) -> torch.nn.Module:
    """A 5-core network on 8x8 images with 3 classes: 4 window cores of 5 neurons, one output core of 6."""
    return build_model("truenorth", (1, 8, 8), 3, **{**TINY, **options})


def test_gaussian_approximation_matches_monte_carlo_of_the_same_neuron() -> None:
    # 16 neurons of one core, 256 axons: mean |P_gauss - P_mc| <= 0.01, max <= 0.03 (MC s.e. <= 0.004)
    g = torch.Generator().manual_seed(0)
    axons, neurons, draws = 256, 16, 16000
    x = torch.rand(1, 1, axons, generator=g)
    c = torch.rand(1, axons, neurons, generator=g)
    s = torch.where(torch.rand(1, axons, neurons, generator=g) < 0.5, -1.0, 1.0)
    leak = torch.randint(-8, 9, (1, neurons), generator=g).float()
    threshold = 1
    p_gauss = spike_probability(x, c, s, leak, threshold)[0, 0]
    spikes = torch.rand(draws, axons, 1, generator=g) < x[0, 0].view(1, -1, 1)
    bits = torch.rand(draws, axons, neurons, generator=g) < c[0]
    potential = (spikes & bits).float().mul(s[0]).sum(1) + leak[0]
    p_mc = (potential >= threshold).float().mean(0)
    error = (p_gauss - p_mc).abs()
    assert error.mean() <= 0.01 and error.max() <= 0.04, (error.mean(), error.max())
    mean, variance = input_moments(x, c, s, leak)
    assert torch.allclose(mean[0, 0], potential.mean(0), atol=4 * potential.std(0).max() / draws ** 0.5)
    assert torch.allclose(variance[0, 0], potential.var(0), rtol=0.05)


def test_expectation_gradients_match_finite_differences() -> None:
    model = tiny_model().double()
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    layer = model.layers[0]

    c0 = layer.connection_probability.detach().clone()

    @torch.no_grad()
    def loss_of(c: torch.Tensor) -> torch.Tensor:
        layer.connection_probability.copy_(c)
        out = model(x).square().sum()
        layer.connection_probability.copy_(c0)
        return out

    loss = model(x).square().sum()
    (grad,) = torch.autograd.grad(loss, layer.connection_probability)
    for index in [(0, 0, 0), (1, 5, 2), (3, 15, 4)]:
        bump = torch.zeros_like(c0)
        bump[index] = 1e-6
        numeric = (loss_of(c0 + bump) - loss_of(c0 - bump)) / 2e-6
        assert abs(float(numeric) - float(grad[index])) <= 1e-6 + 1e-4 * abs(float(numeric))


def test_sampled_network_fits_the_cores() -> None:
    for options in ({}, {"stride": 4, "hidden_neurons": 224}):
        model = build_model("truenorth", (1, 28, 28), 10, init_seed=0, **options)
        network = model.sample(2, torch.Generator().manual_seed(0))
        assert core_violations(network) == []
        assert network.cores_per_copy == model.cores == (5 if not options else 30)
        for layer in network.layers:
            assert layer.crossbar.shape[2] <= 256 and layer.crossbar.shape[3] <= 256
            assert set(layer.effective_weights().unique().tolist()) <= {-1.0, 0.0, 1.0}  # trinary
            assert set(layer.axon_types.unique().tolist()) <= {0, 1, 2, 3}


def test_constraint_check_refuses_a_broken_network() -> None:
    network = tiny_model().sample(1, torch.Generator().manual_seed(0))
    network.layers[1].axon_sources[0, 1] = network.layers[1].axon_sources[0, 0]  # one neuron, two axons
    network.layers[0].leak[0, 0] = 0.5
    with pytest.raises(CoreConstraintError, match="fan-out > 1") as error:
        check_core_constraints(network)
    assert "leaks must be integers" in str(error.value)


def test_sampling_is_deterministic_from_the_seed_and_follows_the_probabilities() -> None:
    model = tiny_model()
    a = model.sample(3, torch.Generator().manual_seed(7))
    b = model.sample(3, torch.Generator().manual_seed(7))
    c = model.sample(3, torch.Generator().manual_seed(8))
    assert all(torch.equal(la.crossbar, lb.crossbar) for la, lb in zip(a.layers, b.layers, strict=True))
    assert not torch.equal(a.layers[0].crossbar, c.layers[0].crossbar)
    many = model.sample(4000, torch.Generator().manual_seed(0))
    frequency = many.layers[0].crossbar.float().mean(0)
    assert (frequency - model.layers[0].connection_probability.detach()).abs().max() < 0.04  # 5 s.e. of 4000 draws


def test_sampled_run_matches_a_brute_force_simulation() -> None:
    model = tiny_model()
    network = model.sample(2, torch.Generator().manual_seed(1))
    images = torch.rand(3, 64, generator=torch.Generator().manual_seed(2))
    spikes = network.input_spikes(images, torch.Generator().manual_seed(3))
    counts, events = network.run(spikes)
    looped, _ = network.run(spikes, batched=False)
    event_driven, _ = network.run(spikes, events=True)  # one embedding_bag over the active axons
    assert torch.equal(counts, looped) and torch.equal(counts, event_driven)
    # brute force: every neuron, axon by axon
    synaptic = 0
    for copy in range(2):
        for b in range(3):
            layer_in = spikes[copy, b].tolist()
            for layer in network.layers:
                out = []
                for k, n in itertools.product(range(layer.cores), range(layer.crossbar.shape[3])):
                    v = float(layer.leak[k, n])
                    for a, src in enumerate(layer.axon_sources[k].tolist()):
                        if src < len(layer_in) and layer_in[int(src)] and layer.crossbar[copy, k, a, n]:
                            v += float(layer.type_weights[k, n, layer.axon_types[k, a]])
                            synaptic += 1
                    out.append(1.0 if v >= layer.threshold else 0.0)
                layer_in = out
            expect = [sum(layer_in[i] for i in range(len(layer_in)) if network.output_class[i] == cls)
                      for cls in range(3)]
            assert counts[copy, b].tolist() == expect
    assert events.synaptic_events == pytest.approx(synaptic / 3)


@pytest.fixture(scope="module")
def mnist_unit(data_root) -> Dataset:
    """300 training and 200 test MNIST images as spike probabilities in [0, 1]."""
    data = load_dataset("mnist", data_root, normalization="unit")
    return Dataset(data.spec, data.train_x[:300], data.train_y[:300], data.train_x[:0], data.train_y[:0],
                   data.test_x[:200], data.test_y[:200])


def _fit_truenorth(data: Dataset, variants: bool) -> tuple[dict, torch.nn.Module]:
    torch.manual_seed(0)
    model = build_model("truenorth", (1, 28, 28), 10, init_seed=0, ensemble_sizes=[1, 4])
    if not variants:
        model.evaluation_variants = None  # the trainer finds no variants to evaluate
    rule = build_rule("bp", model)
    config = TrainConfig(epochs=2, batch_size=100, optimizer="sgd", lr=0.1, momentum=0.9, progress=False)
    return fit(rule, data, config, hooks=[EnsembleEvents()] if variants else []), model


def test_evaluating_ensembles_in_the_trainer_leaves_training_bit_identical(mnist_unit, one_thread) -> None:
    plain, plain_model = _fit_truenorth(mnist_unit, variants=False)
    varied, varied_model = _fit_truenorth(mnist_unit, variants=True)
    timing = ("epoch_time_s", "samples_per_s")
    drop = (*timing, "variants", "variant_events")
    strip = [{k: v for k, v in r.items() if k not in drop} for r in varied["history"]]
    assert [{k: v for k, v in r.items() if k not in timing} for r in plain["history"]] == strip
    for a, b in zip(plain_model.state_dict().values(), varied_model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for record in varied["history"]:
        assert list(record["variants"]) == ["expectation", "ensemble-1", "ensemble-4"]
        assert record["variants"]["expectation"]["test_accuracy"] == record["test_accuracy"]
        events = record["variant_events"]  # the hook's per-epoch event counts, 4 copies ~ 4x one
        assert set(events) == {"ensemble-1", "ensemble-4"}
        assert 3 < events["ensemble-4"]["input_spikes"] / events["ensemble-1"]["input_spikes"] < 5
    assert "variants" not in plain["history"][0]
    # the sweep after training is the trainer's evaluation: ensemble-1 of the last epoch again, bit for bit
    rule = build_rule("bp", varied_model)
    sweep = ensemble_sweep(rule, mnist_unit.test_x, mnist_unit.test_y, (1, 2), 0, 2, batch_size=64)
    assert sweep["ensemble-1"]["test_accuracy"] == varied["history"][-1]["variants"]["ensemble-1"]["test_accuracy"]
    assert sweep["ensemble-2"]["cores"] == 10 and varied_model.ensemble_sizes == (1, 4)
    assert sweep["ensemble-2"]["events_per_image"]["synaptic_events"] > 0


def test_a_truenorth_checkpoint_loads_weights_only(tmp_path) -> None:
    """Its state dict holds only tensors and plain containers (a method once named ``_version`` shadowed
    nn.Module's metadata version and pickled the whole module into every checkpoint, refused on resume)."""
    model = tiny_model()
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": model.state_dict()}, path)
    state = torch.load(path, weights_only=True)
    assert set(state["model"]) == set(model.state_dict())


def test_ensemble_variant_samples_once_per_generator_seed() -> None:
    model = tiny_model(ensemble_sizes=(4,))
    variant = model.evaluation_variants()["ensemble-4"]
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    first = variant(x, torch.Generator().manual_seed(11))
    network = model._sample_cache[1]
    again = variant(x, torch.Generator().manual_seed(11))
    assert torch.equal(first, again) and model._sample_cache[1] is network
    assert list(model.evaluation_variants()) == ["expectation", "ensemble-4"]


def test_constraints_hook_clips_to_hardware_ranges() -> None:
    model = tiny_model()
    with torch.no_grad():
        model.layers[0].connection_probability.add_(2.0)
        model.layers[1].connection_probability.sub_(2.0)
        model.layers[0].leak.fill_(1000.0)
    apply_constraints(model)
    assert float(model.layers[0].connection_probability.detach().max()) == 1.0
    assert float(model.layers[1].connection_probability.detach().min()) == 0.0
    assert float(model.layers[0].leak.detach().max()) == 255.0


def test_energy_model_charges_cores_times_time_per_image() -> None:
    per_core_uj = CHIP_POWER.value / CHIP_CORES.value * TICK.value * 1e6
    assert energy_per_image_uj(5, "chip-average") == pytest.approx(5 * per_core_uj)
    table = energy_table(5, (1, 64))
    assert table[64]["cores"] == 320
    assert table[64]["paper_calibrated_uj"] == pytest.approx(64 * table[1]["paper_calibrated_uj"])
    with pytest.raises(ValueError, match="valid: chip-average, paper-calibrated"):
        energy_per_image_uj(5, "per-spike")


def test_per_event_energy_charges_the_counted_events_and_the_paper_accounting_is_not_one_tick() -> None:
    # hand-solved: 1000 synaptic events x 26 pJ = 0.026 uJ; spikes uncharged (no per-spike figure read)
    assert per_event_energy_uj({"synaptic_events": 1000.0, "neuron_spikes": 7.0}) == pytest.approx(0.026)
    with pytest.raises(ValueError, match="synaptic_events"):
        per_event_energy_uj({"neuron_spikes": 1.0})
    # the paper's 0.268 uJ for 5 cores is 3.5 chip-average core-ticks, its 108 uJ more than one chip tick (63 uJ)
    assert paper_implied_core_ticks(1, 5) == pytest.approx(0.268e-6 / (0.063 / 4096 * 1e-3) / 5)
    assert paper_implied_core_ticks(64, 4096) > 1.0
    assert paper_implied_cores_per_member() == pytest.approx(108 / 64 / (0.268 / 5))


def test_sweep_records_the_per_event_energy_of_its_events() -> None:
    model = tiny_model()
    rule = build_rule("bp", model)
    x, y = torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(2)), torch.randint(0, 3, (20,))
    variants = ensemble_sweep(rule, x, y, (1, 3), seed=0, epoch=1)
    for n in (1, 3):
        result = variants[f"ensemble-{n}"]
        assert result["per_event_uj"] == pytest.approx(result["events_per_image"]["synaptic_events"] * 26e-6)


@pytest.mark.parametrize(("options", "message"), [
    ({"windows": 3}, "model 'truenorth' has no option 'windows'; valid: .*window"),
    ({"window": 17}, "window=17"),
    ({"window": 1.5}, "option window=1.5: .* takes a whole number >= 1"),
    ({"neurons_per_class": 30}, "exceeds 256 neurons per core"),
    ({"type_weights": "ternary"}, "valid: balanced-signs"),
    ({"type_weights": [1, -1, 300, 2]}, "4 integers in"),
    ({"ensemble_sizes": [0, 4]}, r"ensemble_sizes=\[0,4\]: .* whole number >= 1.*item 0"),
])
def test_bad_model_options_are_refused(options: dict, message: str) -> None:
    with pytest.raises(TrueNorthOptionError, match=message):
        build_model("truenorth", (1, 28, 28), 10, **options)


def test_inputs_outside_probabilities_are_refused() -> None:
    model = tiny_model()
    g = torch.Generator().manual_seed(0)
    for bad in (torch.full((2, 1, 8, 8), -0.4), torch.full((2, 1, 8, 8), 1.5), torch.full((2, 1, 8, 8), float("nan"))):
        with pytest.raises(TrueNorthInputError, match=r"\[0, 1\].*normalization 'unit'") as error:
            model(bad)
        assert "--normalization" not in str(error.value)  # creditlab train has no such flag
        with pytest.raises(TrueNorthInputError, match=r"\[0, 1\]"):  # the ensemble does not clip silently
            model.ensemble_logits(bad, 2, g)


def test_input_of_another_shape_is_refused() -> None:
    model = build_model("truenorth", (1, 28, 28), 10)
    g = torch.Generator().manual_seed(0)
    for shape in ((2, 3, 32, 32), (2, 784), (2, 1, 28, 27)):
        with pytest.raises(TrueNorthInputError, match=r"built for input \(batch, 1, 28, 28\)"):
            model(torch.rand(shape))
        with pytest.raises(TrueNorthInputError, match=r"built for input"):
            model.ensemble_logits(torch.rand(shape), 1, g)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("copies", [2.5, 0, -3, True, "4"])
def test_bad_ensemble_sizes_are_refused(copies: object) -> None:
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(TrueNorthInputError, match="positive integer number of sampled copies"):
        tiny_model().ensemble_logits(x, copies, torch.Generator().manual_seed(0))  # type: ignore[arg-type]
    with pytest.raises(CreditlabError, match="positive integer"):
        energy_table(5, (1, copies))  # type: ignore[arg-type]  # no negative µJ
    with pytest.raises(CreditlabError, match="positive integer"):
        energy_per_image_uj(copies, "chip-average")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["ensemble-x", "ensemble--3", "ensemble-0", "ensemble-", "ensemble-2.5", "expect"])
def test_bad_variant_names_are_refused(name: str) -> None:
    with pytest.raises(TrueNorthInputError, match="'ensemble-N' with N a positive integer"):
        parse_ensemble_variant(name)
    assert parse_ensemble_variant("ensemble-64") == 64


@pytest.mark.parametrize("rule", ["fa", "dfa", "gevb"])
def test_rules_that_cannot_train_it_say_so(rule: str) -> None:
    with pytest.raises(IncompatibleModelError, match="truenorth"):
        build_rule(rule, tiny_model())


def test_nir_round_trip_reproduces_the_sampled_outputs(tmp_path) -> None:
    nir = pytest.importorskip("nir")
    from creditlab.neuromorphic.nir_export import run_nir, to_nir

    network = tiny_model().sample(2, torch.Generator().manual_seed(5))
    images = torch.rand(16, 64, generator=torch.Generator().manual_seed(6))
    spikes = network.input_spikes(images, torch.Generator().manual_seed(7))
    counts, _ = network.run(spikes)
    path = tmp_path / "truenorth.nir"
    nir.write(path, to_nir(network, copy=1))
    graph = nir.read(path)
    assert {type(n).__name__ for n in graph.nodes.values()} == {"Input", "Affine", "IF", "Output"}
    assert set(graph.nodes["synapses_0"].weight.flatten().tolist()) <= {-1.0, 0.0, 1.0}
    assert torch.equal(torch.from_numpy(run_nir(graph, spikes[1].numpy())).float(), counts[1])


def test_nir_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from creditlab.neuromorphic.nir_export import NIRUnavailableError, to_nir

    real_import = builtins.__import__

    def no_nir(name: str, *args: object, **kwargs: object) -> object:
        if name == "nir" or name.startswith("nir."):
            raise ImportError("No module named 'nir'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_nir)
    with pytest.raises(NIRUnavailableError, match=r"pip install 'creditlab\[nir\]'"):
        to_nir(tiny_model().sample(1, torch.Generator().manual_seed(0)))


def test_reproduce_quick_records_every_variant(data_root, tmp_path) -> None:
    from creditlab.experiments import ExperimentContext, load_all
    from creditlab.results import read_records

    experiment = load_all().get("truenorth-mnist")
    experiment.run(ExperimentContext(quick=True, out_dir=tmp_path, data_dir=data_root))
    (record,) = read_records(tmp_path / "results.jsonl")
    variants = record["final"]["variants"]
    assert list(variants) == ["expectation"] + [f"ensemble-{n}" for n in (1, 2, 4, 8, 16, 32, 64)]
    last_epoch = record["epochs"][-1]["variants"]  # per epoch: expectation and ensemble-1 only
    assert list(last_epoch) == ["expectation", "ensemble-1"]
    assert variants["ensemble-1"]["test_accuracy"] == last_epoch["ensemble-1"]["test_accuracy"]
    assert variants["ensemble-64"]["cores"] == 64 * 5 and record["final"]["quick"] is True
    assert 0.0 <= variants["ensemble-1"]["test_accuracy"] <= 1.0
    assert variants["ensemble-2"]["events_per_image"]["synaptic_events"] > variants["ensemble-1"][
        "events_per_image"]["synaptic_events"]


@pytest.mark.parametrize(("options", "message"), [
    ({"networks": ["7core"]}, "networks=.*takes one of '5core', '30core'.*item 7core: not one of the valid"),
    ({"epochs": 0}, "epochs=0: .* takes a whole number >= 1"),
    ({"sweep": [0, 2]}, r"sweep=\[0,2\]: .* takes a whole number >= 1, or a non-empty list of them .*item 0"),
])
def test_bad_experiment_options_are_refused(options: dict, message: str, tmp_path) -> None:
    from creditlab.experiments import ExperimentContext, load_all, resolve_options

    experiment = load_all().get("truenorth-mnist")
    with pytest.raises(CreditlabError, match=message):
        experiment.run(ExperimentContext(quick=True, out_dir=tmp_path, options=resolve_options(experiment, options)))
