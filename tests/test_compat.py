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
def table(one_thread) -> dict[str, dict]:  # noqa: ANN001
    result = CliRunner().invoke(app, ["rules", "--json"])
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
