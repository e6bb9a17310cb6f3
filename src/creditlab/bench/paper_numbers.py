"""The papers' own numbers, with their sources, to print beside ours.

Accuracy numbers are keyed by (rule, model, dataset, model options) in creditlab's names; where a
paper's network differs from ours the ``setting`` says how. Step-time numbers are the anchors'
ratios to their own BP (``shared/research/anchor_perf.md``), keyed by (rule, model, device type).
Every number was copied from ``shared/research/gevb_fa.md`` (§1.6 GEVB tables, §3.5 BioTorch
``Benchmarks.md``) or ``anchor_perf.md``; ``status`` carries the notes' verification status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GEVB_SOURCE = ("Clark, Abbott & Chung 2021 (GEVB), authors' notebooks/table.ipynb, VectorizedNets 0a5856d; "
               "gevb_fa.md §1.6")
GEVB_SETTING = "Adam 3e-4, batch 128, <=200 epochs (stop at 100% train), final checkpoint, mean of <=5 runs"
BIOTORCH_SOURCE = "Sanfiz & Akrout 2021 (BioTorch), Benchmarks.md at 74fad0d; gevb_fa.md §3.5"
BIOTORCH_MNIST_SETTING = ("LeNet on 32x32 MNIST, SGD momentum 0.9, wd 1e-3, batch 64, 100 epochs, "
                          "lr /10 at 50/75; best test error over epochs (test set also selects); single run")
BIOTORCH_CIFAR_SETTING = ("CIFAR-10, 45k/5k split, crop+flip, 250 epochs, batch 128, wd 1e-4, "
                          "lr /10 at 100/150/200; best-validation model on test; single run")
ANCHOR_SOURCE = "anchor_perf.md (public reference code timed interleaved with its own BP, batch 128)"


@dataclass(frozen=True)
class PaperNumber:
    """One number from a paper: value, what it measures, where it comes from, under what setting."""

    value: float
    metric: str  # "test_error_pct" or "step_time_ratio_to_bp"
    source: str
    setting: str
    status: str = "verified"  # or "UNVERIFIED" (as the research notes mark it)
    optimizer: str | None = None  # the optimizer the paper's run used, where a table has several
    note: str = ""

    @property
    def test_accuracy_pct(self) -> float:
        """100 - test error, for numbers that are test errors."""
        if self.metric != "test_error_pct":
            raise ValueError(f"{self.metric} is not a test error")
        return 100.0 - self.value


Options = tuple[tuple[str, Any], ...]
AccuracyKey = tuple[str, str, str, Options]


def options_key(options: dict[str, Any] | None) -> Options:
    """Model options as a hashable, order-free key; falsy values are dropped (they are the defaults)."""
    return tuple(sorted((k, v) for k, v in (options or {}).items() if v))


def _gevb_tables() -> dict[AccuracyKey, list[PaperNumber]]:
    # gevb_fa.md §1.6: per architecture, (DF+, BP+, DF mixed, BP mixed) test error % (train error % or 0).
    tables = {
        "mnist": {
            "fc": (("1.87", "0.06"), ("1.93", "0.05"), ("2.32", "0.33"), ("1.84", "0.07")),
            "fc-conventional": (("2.2", "0.3"), ("1.36", "0"), ("2.09", "0.19"), ("1.29", "0")),
            "conv": (("2.33", "1.03"), ("1.3", "0.19"), ("1.83", "0.83"), ("0.8", "0")),
            "conv-conventional": (("1.56", "0.67"), ("0.71", "0"), ("1.64", "0.42"), ("0.65", "0")),
            "lc": (("1.78", "0"), ("1.64", "0"), ("1.84", "0.05"), ("1.44", "0")),
            "lc-conventional": (("1.98", "0.32"), ("1.21", "0"), ("1.48", "0.09"), ("1.07", "0")),
        },
        "cifar10": {
            "fc": (("47.62", "1.25"), ("47.03", "0.72"), ("48.86", "2.02"), ("45.98", "0.78")),
            "fc-conventional": (("48.69", "3.28"), ("45.42", "0.96"), ("49.54", "2.88"), ("45.69", "0.73")),
            "conv": (("33.74", "28.83"), ("30.85", "16.29"), ("38.43", "20.59"), ("30.54", "1.71")),
            "conv-conventional": (("54.18", "48.43"), ("32.13", "0.23"), ("44.07", "17.25"),
                                  ("28.8", "0.15")),
            "lc": (("41.08", "0.83"), ("41.01", "0.34"), ("40.11", "0.83"), ("38.77", "0.36")),
            "lc-conventional": (("41.18", "10.62"), ("35.51", "0"), ("39.41", "2.94"), ("32.32", "0")),
        },
    }
    numbers: dict[AccuracyKey, list[PaperNumber]] = {}
    for dataset, rows in tables.items():
        for row, cells in rows.items():
            arch, conventional = row.split("-")[0], row.endswith("conventional")
            model = f"arelu-{arch}" if conventional else f"vnn-{arch}"
            direct = "dfa" if conventional else "gevb"
            # (rule, model options) of the four columns: DF+, BP+, DF mixed, BP mixed
            nonneg: dict[str, Any] = {"nonnegative": True} if conventional else {}
            mixed: dict[str, Any] = {} if conventional else {"mixed_sign": True}
            columns = ((("dfa+" if conventional else "gevb"), nonneg, "nonnegative (+)"),
                       ("bp", nonneg, "BP+"),
                       (direct, mixed, "mixed sign"), ("bp", mixed, "BP, mixed sign"))
            for (rule, options, label), (test, train) in zip(columns, cells, strict=True):
                name = f"{arch.upper()}{'' if conventional else '-Vec'}"
                numbers[(rule, model, dataset, options_key(options))] = [PaperNumber(
                    float(test), "test_error_pct", GEVB_SOURCE, GEVB_SETTING, optimizer="adam",
                    note=f"{name} {label}; train error {train}%"
                         + ("; table-to-dataset assignment UNVERIFIED" if dataset == "cifar10" else ""))]
    return numbers


def _biotorch_tables() -> dict[AccuracyKey, list[PaperNumber]]:
    numbers: dict[AccuracyKey, list[PaperNumber]] = {}
    mnist = {"bp": (0.91, 9.2), "fa": (1.7, 13.06), "usf": (0.94, 9.69), "brsf": (0.91, 10.02),
             "frsf": (0.97, 9.61), "dfa": (1.61, 12.81)}
    for rule, (mnist_error, fashion_error) in mnist.items():
        for dataset, error in (("mnist", mnist_error), ("fashion-mnist", fashion_error)):
            numbers.setdefault((rule, "lenet", dataset, ()), []).append(PaperNumber(
                error, "test_error_pct", BIOTORCH_SOURCE, BIOTORCH_MNIST_SETTING, optimizer="sgd",
                note="BioTorch LeNet takes 32x32 inputs; ours 28x28 (padded convs)"))
    # CIFAR-10: (LeNet SGD, LeNet Adam, ResNet-20 SGD, ResNet-20 Adam)
    cifar = {"bp": (14.23, 15.92, 8.63, 10.01), "fa": (46.69, 40.67, 32.16, 29.59),
             "dfa": (54.21, 37.59, 45.94, 32.16), "usf": (16.22, 16.34, 10.05, 10.59),
             "brsf": (16.02, 17.08, 11.02, 11.08), "frsf": (16.86, 16.83, 11.2, 11.22)}
    for rule, errors in cifar.items():
        for (model, optimizer), error in zip((("lenet", "sgd"), ("lenet", "adam"), ("resnet20", "sgd"),
                                               ("resnet20", "adam")), errors, strict=True):
            numbers.setdefault((rule, model, "cifar10", ()), []).append(PaperNumber(
                error, "test_error_pct", BIOTORCH_SOURCE, BIOTORCH_CIFAR_SETTING + f"; {optimizer.upper()}",
                optimizer=optimizer))
    return numbers


#: (rule, model, dataset, model options) -> the papers' test errors for that cell
ACCURACY: dict[AccuracyKey, list[PaperNumber]] = {**_gevb_tables(), **_biotorch_tables()}

#: (rule, model, device type) -> the anchors' step-time ratio to their own BP (anchor_perf.md §1, §2)
STEP_TIME_RATIO: dict[tuple[str, str, str], PaperNumber] = {
    (rule, model, device): PaperNumber(ratio, "step_time_ratio_to_bp", ANCHOR_SOURCE, setting)
    for (rule, model, device, ratio, setting) in (
        ("fa", "lenet", "cpu", 1.05, "BioTorch LeNet 32x32, Adam, 2 CPU threads, N=50"),
        ("dfa", "lenet", "cpu", 1.21, "BioTorch LeNet 32x32, Adam, 2 CPU threads, N=50"),
        ("usf", "lenet", "cpu", 1.04, "BioTorch LeNet 32x32, Adam, 2 CPU threads, N=50"),
        ("fa", "lenet", "cuda", 1.29, "BioTorch LeNet 32x32, Adam, H100, N=100"),
        ("dfa", "lenet", "cuda", 1.80, "BioTorch LeNet 32x32, Adam, H100, N=100"),
        ("usf", "lenet", "cuda", 1.43, "BioTorch LeNet 32x32, Adam, H100, N=100"),
        ("fa", "resnet20", "cuda", 1.34, "BioTorch ResNet-20, Adam, H100, N=100"),
        ("dfa", "resnet20", "cuda", 1.89, "BioTorch ResNet-20, Adam, H100, N=100"),
        ("usf", "resnet20", "cuda", 1.44, "BioTorch ResNet-20, Adam, H100, N=100"),
        ("gevb", "vnn-fc", "cpu", 0.95, "VectorizedNets FC-Vec vs the authors' vec-BP, 2 CPU threads, N=25"),
        ("gevb", "vnn-fc", "cuda", 0.97, "VectorizedNets FC-Vec vs the authors' vec-BP, H100, N=100"),
        ("gevb", "vnn-conv", "cpu", 0.95, "VectorizedNets Conv-Vec vs the authors vec-BP, 2 threads, N=25"),
        ("gevb", "vnn-conv", "cuda", 0.88, "VectorizedNets Conv-Vec vs the authors' vec-BP, H100, N=100"),
    )
}


def paper_accuracy(rule: str, model: str, dataset: str, model_options: dict[str, Any] | None = None,
                   optimizer: str | None = None) -> PaperNumber | None:
    """The paper's test error for this cell (preferring the run with ``optimizer``), or None."""
    candidates = ACCURACY.get((rule, model, dataset, options_key(model_options)), [])
    for number in candidates:
        if optimizer is not None and number.optimizer == optimizer:
            return number
    return candidates[0] if candidates else None


def paper_step_time_ratio(rule: str, model: str, device_type: str) -> PaperNumber | None:
    """The anchor's step-time ratio to its own BP for a rule, model and device type (``cpu``/``cuda``)."""
    return STEP_TIME_RATIO.get((rule, model, device_type))


__all__ = ["ACCURACY", "STEP_TIME_RATIO", "PaperNumber", "options_key", "paper_accuracy",
           "paper_step_time_ratio"]
