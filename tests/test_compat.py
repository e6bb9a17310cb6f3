"""`creditlab rules` says a rule trains a model exactly when constructing the rule on it succeeds."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from creditlab.cli import app
from creditlab.data.specs import DATASETS
from creditlab.errors import IncompatibleModelError
from creditlab.models import MODELS, build_model
from creditlab.rules import RULES, build_rule
from creditlab.rules.fa import LOCAL_PARAMETER_LAYERS, FeedbackLayerMixin, own_parameter_names


@pytest.fixture(scope="module")
def table(one_thread, tmp_path_factory) -> dict[str, dict]:  # noqa: ANN001
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CREDITLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
        result = CliRunner().invoke(app, ["rules", "--json", "--refresh"])  # built now, not read from a cache
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _construct(rule: str, model: str):  # noqa: ANN202
    spec = DATASETS.get(MODELS.get(model).default_dataset)
    torch.manual_seed(0)
    return build_rule(rule, build_model(model, spec.image_shape, spec.num_classes))


def test_the_table_says_yes_iff_construction_succeeds(table: dict[str, dict]) -> None:
    assert sorted(table) == RULES.names()
    for rule in RULES.names():
        for model in MODELS.names():
            try:
                _construct(rule, model)
                built = True
            except IncompatibleModelError:
                built = False
            assert (model in table[rule]["models"]) == built, (rule, model)
    assert "resnet20" not in table["dfa"]["models"] and "resnet20" not in table["dfa+"]["models"]


def test_fa_family_leaves_no_listed_model_with_an_exact_weight_layer(table: dict[str, dict]) -> None:
    """Every parameter-owning module of a listed model is converted or has per-unit parameters."""
    assert "arelu-lc" in table["fa"]["models"]
    for rule in ("fa", "usf", "frsf", "brsf"):
        for model in table[rule]["models"]:
            for path, module in _construct(rule, model).model.named_modules():
                if own_parameter_names(module):
                    assert isinstance(module, (FeedbackLayerMixin, *LOCAL_PARAMETER_LAYERS)), (rule, model, path)


def test_the_rules_table_is_cached_per_source(tmp_path, monkeypatch) -> None:
    """Built once per source key; another key, a corrupt file or --refresh builds it again."""
    from creditlab.bench import rules_table as cache

    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    builds, built = [], {"bp": {"description": "d", "models": ["mlp"]}}
    monkeypatch.setattr(cache, "build_table", lambda: builds.append(1) or built)
    assert cache.rules_table() == cache.rules_table() == built
    assert len(builds) == 1
    monkeypatch.setattr(cache, "source_key", lambda: "another-source")
    cache.rules_table()
    assert len(builds) == 2 and [p.name for p in tmp_path.iterdir()] == ["rules-table-another-source.json"]
    (tmp_path / "rules-table-another-source.json").write_text("{not json")
    cache.rules_table()
    cache.rules_table(refresh=True)
    assert len(builds) == 4


def test_the_source_key_follows_every_source_file(tmp_path, monkeypatch) -> None:
    import creditlab
    from creditlab.bench import rules_table as cache

    package = tmp_path / "creditlab"
    package.mkdir()
    (package / "rule.py").write_text("x = 1\n")
    monkeypatch.setattr(creditlab, "__file__", str(package / "__init__.py"))
    before = cache.source_key()
    (package / "rule.py").write_text("x = 2\n")
    assert cache.source_key() != before


def test_a_cached_rules_table_is_read_without_torch(tmp_path) -> None:
    """What makes the warm `creditlab rules` fast (< 3 s): importing torch alone takes seconds."""
    import os
    import subprocess
    import sys

    from creditlab.bench import rules_table as cache

    env = {**os.environ, cache.CACHE_ENV: str(tmp_path)}
    key = cache.source_key()
    (tmp_path / f"rules-table-{key}.json").write_text(json.dumps(
        {"key": key, "rules": {"bp": {"description": "backprop", "models": ["mlp"]}}}))
    code = ("import sys; from typer.testing import CliRunner; from creditlab.cli import app; "
            "r = CliRunner().invoke(app, ['rules', '--json']); print(r.output.strip()); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ['{"bp": {"description": "backprop", "models": ["mlp"]}}', "False"]
