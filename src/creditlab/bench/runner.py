"""``creditlab bench SUITE``: run a benchmark suite from YAML, one results record per unit of work.

A suite (``src/creditlab/configs/bench/NAME.yaml``, or any YAML path) is::

    name: quick
    description: ...
    defaults: {dataset: mnist}          # merged into every entry (the entry wins)
    entries:
      - id: natural                      # unique within the suite
        kind: train                      # train | reproduce | perf
        rules: all                       # or a list of registered rule names
        exclude: []                      # rules left out of `all`
        model: natural                   # a model name, or `natural` (each rule's natural model)
        baseline: true                   # also run bp on every model the entry uses
        dataset: mnist
        settings: {epochs: 3}            # TrainConfig overrides (train)
        model_settings: {vnn-fc: {train_limit: 8192}}   # per-model overrides of `settings`
        rule_options: {}                 # passed to the rule's constructor
        model_options: {}                # passed to the model's builder
        track_alignment: true            # per-layer angle to the true gradient, each epoch (train)
        devices: [cpu, cuda]             # run only on these device types (default: all)
      - {id: biotorch, kind: reproduce, experiment: biotorch-mnist-lenet, quick: false}
      - {id: step-time, kind: perf, rules: all, model: natural, batch_size: 128, rounds: 50, warmup: 5}

Entries expand into *units*: one training run per (rule, model); one experiment per reproduce entry;
one interleaved timing group per model for perf. A unit is skipped when the store already holds a
record for the same configuration (``results.config_key``) made at the current commit, so an
interrupted suite resumes where it stopped (records are appended one by one, and a training unit
also resumes from its per-unit checkpoint directory).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from creditlab.errors import CreditlabError, DivergenceError, UnknownNameError

SUITE_DIR_ENV = "CREDITLAB_BENCH_CONFIGS"
KINDS = ("train", "reproduce", "perf")
_COMMON_KEYS = {"id", "kind", "devices", "seed"}
ENTRY_KEYS = {
    "train": _COMMON_KEYS | {"rules", "exclude", "model", "baseline", "dataset", "settings", "model_settings",
                             "rule_options", "model_options", "track_alignment"},
    "reproduce": _COMMON_KEYS | {"experiment", "quick"},
    "perf": _COMMON_KEYS | {"rules", "exclude", "model", "baseline", "batch_size", "rounds", "warmup",
                            "model_options", "memory"},
}
#: TrainConfig fields that do not change a result (left out of the record's config and its key)
_NON_RESULT_FIELDS = ("out_dir", "resume", "progress")
ALIGNMENT_BATCH = 256


@dataclass
class Suite:
    """A parsed suite: its name, description, source file and raw entries (defaults merged)."""

    name: str
    description: str
    path: Path
    entries: list[dict[str, Any]]


@dataclass
class Unit:
    """One unit of work: a training run, an experiment, or a timing group; ``key`` decides skipping."""

    suite: str
    entry: str
    kind: str
    label: str
    config: dict[str, Any]
    key: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # what runs it but is not part of its identity

    def __post_init__(self) -> None:
        from creditlab.results import config_key

        self.key = config_key(self.config)


# -- finding and parsing suites -------------------------------------------------------------------

#: the suites that ship inside the package (``creditlab/configs/bench/*.yaml``, package data of the wheel)
SHIPPED_SUITES = Path(__file__).resolve().parents[1] / "configs" / "bench"


def suite_dirs() -> list[Path]:
    """Where suite names are looked up: $CREDITLAB_BENCH_CONFIGS, ./configs/bench (a user's own suites),
    then the suites shipped in the package (found from any working directory, installed or not)."""
    dirs = []
    if os.environ.get(SUITE_DIR_ENV):
        dirs.append(Path(os.environ[SUITE_DIR_ENV]))
    dirs.append(Path.cwd() / "configs" / "bench")
    dirs.append(SHIPPED_SUITES)
    return list(dict.fromkeys(dirs))


def find_suite(suite: str | os.PathLike) -> Path:
    """The YAML file of a suite given by name (``quick``) or path; CreditlabError listing the known names."""
    path = Path(suite)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise CreditlabError(f"suite file {path} does not exist")
        return path
    for folder in suite_dirs():
        for suffix in (".yaml", ".yml"):
            candidate = folder / f"{suite}{suffix}"
            if candidate.is_file():
                return candidate
    known = sorted({p.stem for d in suite_dirs() if d.is_dir() for p in d.glob("*.y*ml")})
    searched = ", ".join(str(d) for d in suite_dirs())
    names = ", ".join(known) or "(none)"
    raise CreditlabError(f"unknown benchmark suite {str(suite)!r}; known suites: {names} "
                         f"(searched {searched}); a path to a YAML file also works")


def load_suite(suite: str | os.PathLike) -> Suite:
    """Parse and validate a suite (by name or path): every entry has a known kind, known keys, an id."""
    path = find_suite(suite)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise CreditlabError(f"{path}: not valid YAML: {error}") from error
    return parse_suite(raw, path)


def parse_suite(raw: Any, path: Path) -> Suite:
    """Validate a suite's parsed YAML (see the module docstring for the schema)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("entries"), list) or not raw["entries"]:
        raise CreditlabError(f"{path}: a suite is a mapping with a non-empty list under 'entries'")
    unknown_top = set(raw) - {"name", "description", "defaults", "entries"}
    if unknown_top:
        raise CreditlabError(f"{path}: unknown top-level keys {sorted(unknown_top)}")
    defaults = raw.get("defaults") or {}
    all_keys = set().union(*ENTRY_KEYS.values())
    if not isinstance(defaults, dict) or set(defaults) - all_keys:
        raise CreditlabError(f"{path}: 'defaults' must be a mapping of entry keys "
                             f"({', '.join(sorted(all_keys))})")
    entries, seen = [], set()
    for index, item in enumerate(raw["entries"]):
        if not isinstance(item, dict):
            raise CreditlabError(f"{path}: entry {index} is not a mapping")
        kind = item.get("kind", defaults.get("kind"))
        if kind not in KINDS:
            raise CreditlabError(f"{path}: entry {index} has kind {kind!r}; valid kinds: {', '.join(KINDS)}")
        unknown = set(item) - ENTRY_KEYS[kind]
        if unknown:
            raise CreditlabError(f"{path}: entry {item.get('id', index)!r} ({kind}) has unknown keys "
                                 f"{sorted(unknown)}; valid: {', '.join(sorted(ENTRY_KEYS[kind]))}")
        # defaults may carry keys meant for other kinds: keep only this kind's
        entry = {k: v for k, v in {**defaults, **item}.items() if k in ENTRY_KEYS[kind]}
        entry["kind"] = kind
        entry.setdefault("id", f"{kind}-{index}")
        if entry["id"] in seen:
            raise CreditlabError(f"{path}: two entries have the id {entry['id']!r}")
        seen.add(entry["id"])
        if kind == "reproduce" and not entry.get("experiment"):
            raise CreditlabError(f"{path}: reproduce entry {entry['id']!r} needs 'experiment: NAME'")
        if kind in ("train", "perf") and "model" not in entry:
            entry["model"] = "natural"
        entries.append(entry)
    return Suite(str(raw.get("name") or path.stem), str(raw.get("description") or ""), path, entries)


# -- expanding entries into units -----------------------------------------------------------------

def _rule_names(entry: dict[str, Any]) -> list[str]:
    from creditlab.rules import RULES

    rules = entry.get("rules", "all")
    names = RULES.names() if rules == "all" else list([rules] if isinstance(rules, str) else rules)
    for name in [*names, *entry.get("exclude", [])]:
        RULES.get(name)  # UnknownNameError lists the valid names
    return [n for n in names if n not in set(entry.get("exclude", []))]


def _rule_model_pairs(entry: dict[str, Any]) -> list[tuple[str, str]]:
    """(rule, model) pairs of a train/perf entry, driven by the registries (compat.py)."""
    from creditlab.bench.compat import can_train, natural_model
    from creditlab.bench.perf import BASELINE_RULE
    from creditlab.models import MODELS

    explicit_rules = entry.get("rules", "all") != "all"
    pairs: list[tuple[str, str]] = []
    for rule in _rule_names(entry):
        if entry["model"] == "natural":
            pairs.append((rule, natural_model(rule)))
            continue
        MODELS.get(entry["model"])
        if can_train(rule, entry["model"]):
            pairs.append((rule, entry["model"]))
        elif explicit_rules:
            from creditlab.rules import RULES

            raise CreditlabError(f"entry {entry['id']!r}: rule {rule!r} cannot train model "
                                 f"{entry['model']!r} (it accepts {RULES.get(rule).accepts}); "
                                 "leave it out or use rules: all")
    if entry.get("baseline"):
        for model in dict.fromkeys(m for _, m in pairs):
            if (BASELINE_RULE, model) not in pairs:
                pairs.append((BASELINE_RULE, model))
    return pairs


def _device_type(device: str) -> str:
    return torch.device(device).type


def train_unit_config(rule: str, model: str, dataset: str, settings: dict[str, Any], device: str, seed: int,
                      rule_options: dict[str, Any], model_options: dict[str, Any], track_alignment: bool
                      ) -> dict[str, Any]:
    """The full configuration of a training run (the record's ``config``): names, every TrainConfig field
    from the model's defaults plus ``settings``, options, and whether alignment is tracked."""
    from creditlab.rules import RULES
    from creditlab.train import config_for

    try:
        train_config = config_for(model, (RULES.get(rule).optimizer_requirement,),
                                  **{**settings, "device": device, "seed": seed})
    except TypeError as error:
        raise CreditlabError(f"{rule}/{model}: {error}") from error
    train_config.validate()
    fields = {k: v for k, v in dataclasses.asdict(train_config).items() if k not in _NON_RESULT_FIELDS}
    fields["milestones"] = list(fields["milestones"])
    return {"rule": rule, "model": model, "dataset": dataset, **fields, "rule_options": dict(rule_options),
            "model_options": dict(model_options), "track_alignment": bool(track_alignment)}


def expand_suite(suite: Suite, device: str) -> list[Unit]:
    """Every unit of the suite that applies to ``device`` (entries whose ``devices`` omit it are left out)."""
    units: list[Unit] = []
    for entry in suite.entries:
        if "devices" in entry and _device_type(device) not in entry["devices"]:
            continue
        seed = int(entry.get("seed", 0))
        if entry["kind"] == "train":
            for rule, model in _rule_model_pairs(entry):
                per_model = (entry.get("model_settings") or {}).get(model, {})
                settings = {**(entry.get("settings") or {}), **per_model}
                config = train_unit_config(rule, model, entry.get("dataset", "mnist"), settings, device, seed,
                                           entry.get("rule_options") or {}, entry.get("model_options") or {},
                                           entry.get("track_alignment", False))
                label = f"{rule}/{model}/{config['dataset']}"
                units.append(Unit(suite.name, entry["id"], "train", label, config))
        elif entry["kind"] == "reproduce":
            from creditlab.experiments import load_all

            name = entry["experiment"]
            load_all().get(name)  # UnknownNameError lists the registered experiments
            config = {"experiment": name, "quick": bool(entry.get("quick", False)), "seed": seed,
                      "device": device}
            units.append(Unit(suite.name, entry["id"], "reproduce", name, config))
        else:
            groups: dict[str, list[str]] = {}
            for rule, model in _rule_model_pairs({**entry, "baseline": True}):
                groups.setdefault(model, []).append(rule)
            from creditlab.bench.perf import BASELINE_RULE

            for model, rules in groups.items():
                rules = sorted(set(rules), key=lambda r: (r != BASELINE_RULE, r))
                config = {"model": model, "rules": rules, "batch_size": int(entry.get("batch_size", 128)),
                          "rounds": int(entry.get("rounds", 50)), "warmup": int(entry.get("warmup", 5)),
                          "seed": seed, "device": device, "threads": torch.get_num_threads(),
                          "model_options": dict(entry.get("model_options") or {}),
                          "memory": bool(entry.get("memory", True))}
                units.append(Unit(suite.name, entry["id"], "perf", f"step time on {model}", config))
    return units


def completed_keys(records: Iterable[dict[str, Any]], commit: str) -> set[str]:
    """Unit keys that already have a record made at ``commit`` (by ``config_key`` or the bench tag)."""
    keys: set[str] = set()
    for record in records:
        if record.get("commit") != commit:
            continue
        if record.get("config_key"):
            keys.add(record["config_key"])
        tag = record.get("bench") or {}
        if tag.get("unit_key"):
            keys.add(tag["unit_key"])
    return keys


# -- running units ----------------------------------------------------------------------------------

class _DataCache:
    """Datasets loaded once per (name, normalization, validation split, seed, device)."""

    def __init__(self, data_dir: str | os.PathLike | None) -> None:
        self.data_dir = data_dir
        self._loaded: dict[tuple[Any, ...], Any] = {}

    def get(self, config: dict[str, Any]) -> Any:
        from creditlab.data import load_dataset

        key = tuple(config[k] for k in ("dataset", "normalization", "val_fraction", "seed", "device"))
        if key not in self._loaded:
            self._loaded[key] = load_dataset(config["dataset"], self.data_dir, config["device"],
                                             config["val_fraction"], config["seed"], config["normalization"])
        return self._loaded[key]


def _tag(record: dict[str, Any], unit: Unit, **extra: Any) -> dict[str, Any]:
    record["bench"] = {"suite": unit.suite, "entry": unit.entry, "unit_key": unit.key, **extra}
    return record


def run_train_unit(unit: Unit, data: _DataCache, run_dir: Path) -> list[dict[str, Any]]:
    """Train one (rule, model) with the unit's config (resuming from ``run_dir``); one ``train`` record."""
    from creditlab.results import make_record
    from creditlab.train import train_from_names

    config = unit.config
    settings = {k: v for k, v in config.items()
                if k not in ("rule", "model", "dataset", "rule_options", "model_options", "track_alignment")}
    callback_factory = None
    if config["track_alignment"]:
        from creditlab.analysis.alignment import AlignmentTracker

        def callback_factory(learner: Any, dataset: Any) -> list[Any]:
            return [AlignmentTracker(dataset.train_x[:ALIGNMENT_BATCH], dataset.train_y[:ALIGNMENT_BATCH])]

    try:
        summary = train_from_names(config["rule"], config["model"], config["dataset"], data.data_dir,
                                   rule_options=config["rule_options"], model_options=config["model_options"],
                                   callback_factory=callback_factory, loaded=data.get(config),
                                   **{**settings, "out_dir": str(run_dir), "resume": True, "progress": False})
    except DivergenceError as error:
        record = make_record("train", unit.label, config, {"error": str(error)}, device=config["device"])
        return [_tag(record, unit, run_dir=str(run_dir))]
    final = {k: summary.get(k) for k in ("test_accuracy", "val_accuracy", "train_loss", "train_accuracy",
                                         "epochs")}
    available = len(data.get(config).train_x)
    final["train_examples"] = min(config["train_limit"] or available, available)
    record = make_record("train", unit.label, config, final, summary["history"], summary["wall_time_s"],
                         config["device"])
    return [_tag(record, unit, run_dir=str(run_dir))]


def run_reproduce_unit(unit: Unit, data_dir: str | os.PathLike | None, run_dir: Path) -> list[dict[str, Any]]:
    """Run a registered experiment; its records, tagged with the unit, go to the store."""
    from creditlab.experiments import ExperimentContext, load_all

    config = unit.config
    experiment = load_all().get(config["experiment"])
    ctx = ExperimentContext(quick=config["quick"], device=config["device"], out_dir=run_dir,
                            data_dir=data_dir, seed=config["seed"])
    records = experiment.run(ctx) or []
    return [_tag(dict(r), unit, run_dir=str(run_dir), quick=config["quick"]) for r in records]


def run_perf_unit(unit: Unit, data_dir: str | os.PathLike | None) -> list[dict[str, Any]]:
    """Time a group of rules on one model, interleaved; one ``perf`` record per rule (or its reason)."""
    from creditlab.bench.perf import measure_rules
    from creditlab.results import make_record

    config = unit.config
    result = measure_rules(config["model"], config["rules"], config["device"], config["batch_size"],
                           config["rounds"], config["warmup"], config["seed"], data_dir,
                           config["model_options"], config["memory"])
    records = []
    common = {"batch_size": result.batch_size, "rounds": result.rounds, "warmup": result.warmup,
              "data": result.data_source}
    for rule in config["rules"]:
        if rule in result.rows:
            final = {**result.rows[rule], **common}
            wall = result.rows[rule]["median_ms"] * result.rows[rule]["timed_steps"] / 1000
        else:
            final = {"unavailable": result.unavailable.get(rule, "not measured"), **common}
            wall = 0.0
        record = make_record("perf", f"{rule}/{config['model']}", {**config, "rule": rule}, final,
                             wall_time_s=wall, device=config["device"])
        records.append(_tag(record, unit))
    return records


def run_suite(suite: str, device: str, out: Path, data_dir: str | os.PathLike | None = None,
              runs_dir: Path | None = None) -> list[dict[str, Any]]:
    """Run every unit of ``suite`` (a shipped suite name or a YAML path) on ``device``.

    Appends records one by one to the JSON-lines store ``out`` and returns the new ones. Units with a
    record for the same config at the current commit are skipped. Training units checkpoint to
    ``runs_dir/SUITE/COMMIT/ENTRY-RULE-MODEL-KEY`` (default ``runs/bench``) and resume from there.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from creditlab.results import append_record, git_commit, read_records

    if _device_type(device) == "cuda" and not torch.cuda.is_available():
        raise CreditlabError("--device cuda was asked for, but torch sees no CUDA device")
    try:
        parsed = load_suite(suite)
        units = expand_suite(parsed, device)
    except UnknownNameError as error:
        raise CreditlabError(f"suite {suite}: {error}") from error
    out = Path(out)
    runs_dir = Path(runs_dir or "runs/bench")
    commit = git_commit()
    done = completed_keys(read_records(out) if out.exists() else [], commit)
    console = Console(stderr=True)
    todo = [u for u in units if u.key not in done]
    console.print(f"suite {parsed.name} ({parsed.path}): {len(units)} units on {device}, "
                  f"{len(units) - len(todo)} already recorded at commit {commit}; results -> {out}")
    data = _DataCache(data_dir)
    new_records: list[dict[str, Any]] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"{parsed.name}", total=len(units), completed=len(units) - len(todo))
        for unit in todo:
            progress.update(task, description=f"{parsed.name}: {unit.kind} {unit.label}")
            slug = f"{unit.entry}-{unit.label.replace('/', '-').replace(' ', '-')}-{unit.key}"
            run_dir = runs_dir / parsed.name / commit / slug
            if unit.kind == "train":
                records = run_train_unit(unit, data, run_dir)
            elif unit.kind == "reproduce":
                records = run_reproduce_unit(unit, data_dir, run_dir)
            else:
                records = run_perf_unit(unit, data_dir)
            for record in records:
                append_record(out, record)
            new_records += records
            progress.console.print(_describe(unit, records))
            progress.advance(task)
    return new_records


def _describe(unit: Unit, records: list[dict[str, Any]]) -> str:
    if unit.kind == "train":
        final = records[0]["final"]
        if "error" in final:
            return f"  {unit.label}: diverged ({final['error'][:80]})"
        return (f"  {unit.label}: test accuracy {final['test_accuracy']:.4f} after {final['epochs']} epochs "
                f"({records[0]['wall_time_s']:.0f}s)")
    if unit.kind == "perf":
        parts = [f"{r['config']['rule']} {r['final']['median_ms']:.1f}ms (x{r['final']['ratio_to_bp']:.2f})"
                 if "median_ms" in r["final"] else f"{r['config']['rule']} n/a" for r in records]
        return f"  {unit.label}: " + ", ".join(parts)
    return f"  {unit.label}: {len(records)} records"


__all__ = ["Suite", "Unit", "completed_keys", "expand_suite", "find_suite", "load_suite", "parse_suite",
           "run_suite", "suite_dirs", "train_unit_config"]
