"""Clark, Abbott & Chung (NeurIPS 2021), GEVB: the authors' result tables and alignment angles.

Read from the stored outputs of the authors' notebooks (``davidclark1/VectorizedNets`` @ 0a5856d;
``shared/research/gevb_fa.md`` §1.6, §1.7). Keys: (dataset, model, label) in creditlab's names, the
label as in ``experiments/gevb.py`` (``gevb+``/``dfa+`` nonnegative, ``bp+``, ``gevb``/``dfa`` and
``bp`` mixed sign). The notebook prints the two tables in the order of its ``dsets = ['mnist',
'cifar']``; that the second is CIFAR-10 (and which paper table each is) is that inference, marked
unverified for the CIFAR-10 table as the research notes do.
"""

from __future__ import annotations

from creditlab.papers.value import PaperValue

SOURCE = ("Clark, Abbott & Chung 2021 (GEVB), authors' notebooks/table.ipynb, VectorizedNets 0a5856d; "
          "gevb_fa.md §1.6")
SETTING = "Adam 3e-4, batch 128, <=200 epochs (stop at 100% train), final checkpoint, mean of <=5 runs"
ANGLES_SOURCE = ("authors' notebooks/alignment_and_concentration_viz.ipynb, VectorizedNets 0a5856d; "
                 "gevb_fa.md §1.7 (mean of 5 runs)")
ANGLES_STATUS = "verified"
#: per dataset: the CIFAR-10 table's dataset assignment is inferred from the notebook's ``dsets``
TABLE_STATUS = {"mnist": "verified", "cifar10": "unverified"}
TABLE_NOTE = {"mnist": "", "cifar10": "table-to-dataset assignment UNVERIFIED"}

#: column labels of the four cells of each row, vectorized and conventional nets
LABELS = {"vnn": ("gevb+", "bp+", "gevb", "bp"), "arelu": ("dfa+", "bp+", "dfa", "bp")}
#: how the authors name the columns (for notes)
COLUMN_NAMES = ("nonnegative (+)", "BP+", "mixed sign", "BP, mixed sign")

# (test error %, train error %) of the four cells of each row, as the notebook prints them
_TABLES: dict[str, dict[str, tuple[float, ...]]] = {
    "mnist": {
        "vnn-fc": (1.87, 0.06, 1.93, 0.05, 2.32, 0.33, 1.84, 0.07),
        "arelu-fc": (2.2, 0.3, 1.36, 0.0, 2.09, 0.19, 1.29, 0.0),
        "vnn-conv": (2.33, 1.03, 1.3, 0.19, 1.83, 0.83, 0.8, 0.0),
        "arelu-conv": (1.56, 0.67, 0.71, 0.0, 1.64, 0.42, 0.65, 0.0),
        "vnn-lc": (1.78, 0.0, 1.64, 0.0, 1.84, 0.05, 1.44, 0.0),
        "arelu-lc": (1.98, 0.32, 1.21, 0.0, 1.48, 0.09, 1.07, 0.0),
    },
    "cifar10": {
        "vnn-fc": (47.62, 1.25, 47.03, 0.72, 48.86, 2.02, 45.98, 0.78),
        "arelu-fc": (48.69, 3.28, 45.42, 0.96, 49.54, 2.88, 45.69, 0.73),
        "vnn-conv": (33.74, 28.83, 30.85, 16.29, 38.43, 20.59, 30.54, 1.71),
        "arelu-conv": (54.18, 48.43, 32.13, 0.23, 44.07, 17.25, 28.8, 0.15),
        "vnn-lc": (41.08, 0.83, 41.01, 0.34, 40.11, 0.83, 38.77, 0.36),
        "arelu-lc": (41.18, 10.62, 35.51, 0.0, 39.41, 2.94, 32.32, 0.0),
    },
}


def _row_name(model: str) -> str:
    family, arch = model.split("-")
    return arch.upper() + ("-Vec" if family == "vnn" else "")


def _build() -> tuple[dict[tuple[str, str, str], PaperValue], dict[tuple[str, str, str], PaperValue]]:
    test: dict[tuple[str, str, str], PaperValue] = {}
    train: dict[tuple[str, str, str], PaperValue] = {}
    for dataset, rows in _TABLES.items():
        status, extra = TABLE_STATUS[dataset], TABLE_NOTE[dataset]
        for model, values in rows.items():
            for i, (label, column) in enumerate(zip(LABELS[model.split("-")[0]], COLUMN_NAMES, strict=True)):
                test_error, train_error = values[2 * i], values[2 * i + 1]
                note = f"{_row_name(model)} {column}; train error {train_error:g}%" + (f"; {extra}" if extra else "")
                test[(dataset, model, label)] = PaperValue(test_error, None, status, SOURCE, note, SETTING, 5)
                train[(dataset, model, label)] = PaperValue(train_error, None, status, SOURCE,
                                                            f"{_row_name(model)} {column}", SETTING, 5)
    return test, train


#: (dataset, model, label) -> the authors' test error % and train error % (mean of <= 5 runs)
TEST_ERROR, TRAIN_ERROR = _build()

#: (dataset, model, label) -> per-layer alignment angles (degrees, first hidden layer first) at
#: initialization and at the last checkpoint. Vectorized rows: exact credit vs all-ones; conventional
#: rows: exact gradient vs B e.
ALIGNMENT_ANGLES: dict[tuple[str, str, str], tuple[tuple[float, ...], tuple[float, ...]]] = {
    ("mnist", "vnn-fc", "gevb+"): ((9.2, 55.7), (41.3, 57.7)),
    ("mnist", "vnn-conv", "gevb+"): ((11.9, 6.6, 55.6), (56.6, 39.2, 35.7)),
    ("mnist", "vnn-lc", "gevb+"): ((12.2, 6.6, 55.5), (52.0, 47.3, 50.6)),
    ("mnist", "vnn-fc", "gevb"): ((89.5, 91.6), (62.1, 74.7)),
    ("mnist", "arelu-fc", "dfa"): ((90.1, 89.5), (64.8, 67.0)),
    ("mnist", "arelu-conv", "dfa"): ((90.0, 90.0, 90.1), (89.7, 89.0, 75.0)),
    ("cifar10", "vnn-fc", "gevb+"): ((4.0, 9.0, 55.6), (18.8, 35.0, 56.7)),
    ("cifar10", "vnn-conv", "gevb+"): ((14.1, 13.8, 6.6, 56.0), (42.9, 50.3, 44.8, 48.0)),
    ("cifar10", "vnn-conv", "gevb"): ((89.8, 90.1, 88.9, 90.7), (68.7, 61.0, 74.2, 33.4)),
    ("cifar10", "arelu-conv", "dfa"): ((90.0, 90.1, 90.5, 89.7), (89.6, 88.4, 82.5, 65.1)),
    ("cifar10", "arelu-conv", "dfa+"): ((90.0, 90.1, 90.6, 89.8), (89.8, 88.1, 77.0, 65.6)),
    ("cifar10", "vnn-lc", "gevb+"): ((15.1, 20.4, 13.0, 56.1), (38.3, 41.8, 23.1, 39.7)),
}


def label_to_rule(model: str, label: str) -> tuple[str, dict[str, bool]]:
    """(registered rule, model options) of a table cell: ``dfa+`` is its own rule; ``gevb+``/``bp+``
    are gevb/bp on a nonnegative net."""
    nonnegative = label.endswith("+")
    rule = label if label == "dfa+" else label.rstrip("+")
    if model.startswith("vnn"):
        return rule, {"mixed_sign": not nonnegative}
    return rule, {"nonnegative": nonnegative}


__all__ = ["ALIGNMENT_ANGLES", "ANGLES_SOURCE", "ANGLES_STATUS", "LABELS", "SETTING", "SOURCE", "TEST_ERROR",
           "TRAIN_ERROR", "label_to_rule"]
