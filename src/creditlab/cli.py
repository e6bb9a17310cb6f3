"""Command line: ``creditlab train | rules | models | datasets | demo | reproduce | bench | report``."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from creditlab.errors import CreditlabError, DivergenceError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Learning rules beyond backpropagation: train, compare, reproduce, benchmark.")

DISTRIBUTED_KINDS = ("allreduce", "sketch", "fetchsgd", "topk", "localtopk", "powersgd")
NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _parse_options(pairs: list[str] | None, flag: str) -> dict[str, Any]:
    """``["k=v", ...]`` -> dict, values parsed as YAML scalars/lists (``hidden=[256,256]``)."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=flag)
        key, value = pair.split("=", 1)
        parsed = yaml.safe_load(value)
        if isinstance(parsed, str) and NUMBER.fullmatch(parsed):  # YAML 1.1 reads 1e-3 as a string
            parsed = float(parsed)
        options[key.strip().replace("-", "_")] = tuple(parsed) if isinstance(parsed, list) else parsed
    return options


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _summary_for_json(summary: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in summary.items() if k not in ("history", "config")}
    history = summary.get("history") or []
    if history and "alignment" in history[-1]:
        out["alignment"] = history[-1]["alignment"]
    out["config"] = summary.get("config")
    return out


@app.command()
def train(
    rule: Annotated[str, typer.Option(help="learning rule (see `creditlab rules`)")] = "bp",
    model: Annotated[str, typer.Option(help="model (see `creditlab models`)")] = "mlp",
    data: Annotated[str, typer.Option(help="dataset: mnist, fashion-mnist, kmnist, cifar10")] = "mnist",
    epochs: Annotated[int | None, typer.Option(help="epochs \\[default: the model's]")] = None,
    batch_size: Annotated[int | None, typer.Option(help="global batch size \\[default: the model's]")] = None,
    lr: Annotated[float | None, typer.Option(help="learning rate \\[default: the model's]")] = None,
    optimizer: Annotated[str | None, typer.Option(help="adam, adamw, sgd or rmsprop-centered")] = None,
    momentum: Annotated[float | None, typer.Option(help="SGD momentum (the reducer's with --distributed "
                                                        "sketch/fetchsgd/topk/localtopk; default 0.9 there)")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="weight decay")] = None,
    schedule: Annotated[str | None, typer.Option(help="none, cosine, multistep or linear-cooldown")] = None,
    augment: Annotated[bool | None, typer.Option("--augment/--no-augment", help="random crop + flip")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda\\[:N]")] = "cpu",
    seed: Annotated[int, typer.Option(help="seed of initialization, batches and rule randomness")] = 0,
    data_dir: Annotated[str | None, typer.Option(help="dataset directory (else $CREDITLAB_DATA, "
                                                       "~/.cache/creditlab, download)")] = None,
    out: Annotated[str | None, typer.Option(help="run directory: metrics.jsonl, checkpoint.pt "
                                                 "\\[default: runs/RULE-MODEL-DATA-sSEED]")] = None,
    resume: Annotated[bool, typer.Option(help="continue from the checkpoint in --out")] = False,
    val_fraction: Annotated[float, typer.Option(help="share of training data held out for validation")] = 0.0,
    early_stopping: Annotated[int | None, typer.Option(help="stop after N epochs without a better validation "
                                                            "metric and keep the best epoch (needs --val-fraction)")
                              ] = None,
    train_limit: Annotated[int | None, typer.Option(help="train on the first N examples only")] = None,
    test_limit: Annotated[int | None, typer.Option(help="test on the first N examples only")] = None,
    track_alignment: Annotated[bool, typer.Option(help="log per-layer alignment with the true gradient")] = False,
    mixed_sign: Annotated[bool, typer.Option(help="mixed-sign variant of a VNN model")] = False,
    rule_opt: Annotated[list[str] | None, typer.Option(help="rule option KEY=VALUE (repeatable): the rule's "
                                                           "settings, e.g. sal's spiking phase budget steps=100 "
                                                           "iterations=5 (docs/rules)")] = None,
    model_opt: Annotated[list[str] | None, typer.Option(help="model option KEY=VALUE (repeatable)")] = None,
    distributed: Annotated[str | None, typer.Option(help="under torchrun: " + ", ".join(DISTRIBUTED_KINDS))] = None,
    sketch_rows: Annotated[int, typer.Option(help="count-sketch rows")] = 5,
    sketch_cols: Annotated[int, typer.Option(help="count-sketch columns")] = 10000,
    topk: Annotated[int, typer.Option(help="coordinates updated per step (sketch, fetchsgd, topk)")] = 5000,
    powersgd_rank: Annotated[int, typer.Option(help="PowerSGD matrix rank")] = 2,
    dist_timeout: Annotated[float, typer.Option(help="seconds before a missing peer is an error")] = 60.0,
    record: Annotated[str | None, typer.Option(help="append a results record to this JSONL file")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print a JSON summary as the last stdout line")] = False,
    quiet: Annotated[bool, typer.Option(help="no progress bar or epoch lines")] = False,
) -> None:
    """Train a model with a learning rule; checkpoints every epoch, --resume continues."""
    from creditlab.cli_checks import InvalidFlagError, check_train_flags
    from creditlab.train import train_from_names

    try:  # bad flags end here, before any data is loaded
        check_train_flags(rule=rule, model=model, data=data, device=device, out=out or "runs", data_dir=data_dir,
                          train_limit=train_limit, test_limit=test_limit, epochs=epochs, batch_size=batch_size,
                          lr=lr, val_fraction=val_fraction, rule_options=_parse_options(rule_opt, "--rule-opt"),
                          model_options={**_parse_options(model_opt, "--model-opt"), **({"mixed_sign": True}
                                                                                         if mixed_sign else {})},
                          track_alignment=track_alignment)
    except InvalidFlagError as exc:
        raise _fail(str(exc)) from exc
    rank, world_size = 0, 1
    reducer_factory = None
    requirements: tuple[Any, ...] = ()
    if distributed is not None:
        if distributed not in DISTRIBUTED_KINDS:
            raise _fail(f"unknown --distributed {distributed!r}; valid: {', '.join(DISTRIBUTED_KINDS)}")
        from creditlab.distributed import build_reducer, init_distributed, reducer_requirement

        try:
            rank, world_size = init_distributed(None if device == "cpu" else "nccl", timeout_s=dist_timeout)
        except (CreditlabError, RuntimeError, ValueError) as exc:
            raise _fail(str(exc)) from exc
        if device.startswith("cuda") and ":" not in device:
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"

        # SketchedSGD, FetchSGD and the top-k reducers keep their own momentum and error accumulation
        # (Ivkin et al. Alg. 3): their OptimizerRequirement fixes plain SGD with momentum 0 and a
        # plain-SGD default lr; --momentum goes to the reducer.
        requirement = reducer_requirement(distributed)
        reducer_momentum = None
        if requirement is not None:
            reducer_momentum = 0.9 if momentum is None else momentum
            momentum = None
            requirements = (requirement,)

        def reducer_factory(learner: Any, config: Any) -> Any:
            return build_reducer(distributed, learner.model, sketch_rows=sketch_rows, sketch_cols=sketch_cols,
                                 k=topk, momentum=config.momentum if reducer_momentum is None
                                 else reducer_momentum, lr=config.lr, seed=config.seed,
                                 powersgd_rank=powersgd_rank)

    model_options = _parse_options(model_opt, "--model-opt")
    if mixed_sign:
        model_options["mixed_sign"] = True
    callback_factory = None
    if track_alignment:
        from creditlab.analysis.alignment import AlignmentTracker

        def callback_factory(learner: Any, dataset: Any) -> list[Any]:
            return [AlignmentTracker(dataset.train_x[:256], dataset.train_y[:256])]

    run_dir = out or f"runs/{rule}-{model}-{data}-s{seed}"
    if resume and rank == 0:
        from creditlab.checkpoint import CHECKPOINT_NAME

        if not (Path(run_dir) / CHECKPOINT_NAME).is_file():
            typer.echo(f"note: --resume: no checkpoint in {run_dir}, so this is a new run from epoch 1", err=True)
    try:
        summary = train_from_names(
            rule, model, data, data_dir=data_dir, rule_options=_parse_options(rule_opt, "--rule-opt"),
            model_options=model_options, callback_factory=callback_factory, reducer_factory=reducer_factory,
            requirements=requirements, early_stopping=early_stopping,
            epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, momentum=momentum,
            weight_decay=weight_decay, schedule=schedule, augment=augment, device=device, seed=seed,
            out_dir=run_dir, resume=resume, val_fraction=val_fraction, train_limit=train_limit,
            test_limit=test_limit, progress=not quiet and rank == 0)
    except DivergenceError as exc:
        raise _fail(str(exc), code=3) from exc
    except (CreditlabError, ValueError, TypeError) as exc:
        raise _fail(str(exc)) from exc
    if rank != 0:
        return
    if record:
        from creditlab.results import append_record, make_record

        final = {k: summary.get(k) for k in ("test_accuracy", "val_accuracy", "train_loss", "train_accuracy",
                                             "epochs", "world_size", "bytes_sent", "bytes_received",
                                             "compression_ratio") if k in summary}
        append_record(record, make_record("train", f"{rule}/{model}/{data}", summary["config"], final,
                                          summary["history"], summary["wall_time_s"], device))
    if json_out:
        typer.echo(json.dumps(_summary_for_json(summary), default=str))
    else:
        acc = summary["test_accuracy"]
        typer.echo(f"{rule} on {model}/{data}: test accuracy {acc:.4f} after {summary['epochs']} epochs "
                   f"({summary['wall_time_s']:.1f}s); run directory {run_dir}")


@app.command()
def rules(
    as_json: Annotated[bool, typer.Option("--json", help="print {rule: {description, models}} as JSON")] = False,
    refresh: Annotated[bool, typer.Option(help="construct every rule on every model again, ignoring the cache")
                       ] = False,
) -> None:
    """Every learning rule, with the models it can train (found by constructing it on each; the table is
    cached per source and installed version, so only the first run after a change builds it)."""
    from creditlab.bench.rules_table import rules_table

    rows = rules_table(refresh=refresh)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="creditlab learning rules")
    table.add_column("rule")
    table.add_column("description")
    table.add_column("models it can train")
    for name, row in rows.items():
        table.add_row(name, row["description"], ", ".join(row["models"]))
    Console().print(table)


@app.command()
def models() -> None:
    """Every model, with its natural dataset and training defaults."""
    from rich.console import Console
    from rich.table import Table

    from creditlab.models import MODELS

    table = Table(title="creditlab models")
    for column in ("model", "description", "dataset", "defaults"):
        table.add_column(column)
    for name in MODELS.names():
        entry = MODELS.get(name)
        defaults = ", ".join(f"{k}={v}" for k, v in entry.defaults.items())
        table.add_row(name, entry.description, entry.default_dataset, defaults)
    Console().print(table)


@app.command()
def datasets(data_dir: Annotated[str | None, typer.Option(help="dataset directory")] = None) -> None:
    """Every dataset, and where its files were found (or that they are missing)."""
    from creditlab.data.specs import DATASETS
    from creditlab.data.store import locate, search_roots

    roots = search_roots(data_dir)
    for name in DATASETS.names():
        spec = DATASETS.get(name)
        if spec.generator is not None:  # built by the library from the run's seed: no files
            typer.echo(f"{name:14s} {spec.train_size}+{spec.test_size} sequences {spec.image_shape}  generated")
            continue
        found = [locate(spec, f, roots) for f in spec.train_files + spec.test_files]
        where = str(found[0].parent) if all(found) else "missing (downloads on first use when online)"
        typer.echo(f"{name:14s} {spec.train_size}+{spec.test_size} images {spec.image_shape}  {where}")


@app.command()
def demo(
    out: Annotated[str, typer.Option(help="output directory")] = "runs/demo",
    epochs: Annotated[int | None, typer.Option(help="epochs per rule (default: each rule's demo budget; "
                                                    "floors are then not enforced)")] = None,
    train_limit: Annotated[int | None, typer.Option(help="training examples per rule (default: each rule's "
                                                         "demo budget; floors are then not enforced)")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    data_dir: Annotated[str | None, typer.Option(help="dataset directory")] = None,
    rules_: Annotated[list[str] | None, typer.Option("--rule", help="only these rules (repeatable)")] = None,
) -> None:
    """Train every rule at its own short budget on MNIST: a table, a PNG, and exit 1 if a rule ends below
    its floor."""
    from creditlab.bench.demo import DemoFloorError, run_demo
    from creditlab.cli_checks import check_demo_flags

    try:
        check_demo_flags(out=out, epochs=epochs, train_limit=train_limit, device=device, data_dir=data_dir,
                         rules=rules_)
        run_demo(Path(out), device=device, data_dir=data_dir, only=rules_, epochs=epochs,
                 train_limit=train_limit)
    except DemoFloorError as exc:
        raise _fail(str(exc), code=1) from exc
    except CreditlabError as exc:
        raise _fail(str(exc)) from exc


@app.command()
def reproduce(
    name: Annotated[str | None, typer.Argument(help="experiment name (see --list)")] = None,
    list_: Annotated[bool, typer.Option("--list", help="list the paper experiments and their options")] = False,
    quick: Annotated[bool, typer.Option(help="reduced run of the same code path (smoke check)")] = False,
    opt: Annotated[list[str] | None, typer.Option(help="experiment option KEY=VALUE (repeatable; "
                                                       "`--list` shows each experiment's)")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    out: Annotated[str | None, typer.Option(help="output directory \\[default: runs/reproduce/NAME]")] = None,
    data_dir: Annotated[str | None, typer.Option(help="dataset directory")] = None,
    seed: Annotated[int, typer.Option(help="base seed")] = 0,
    threads: Annotated[int | None, typer.Option(help="torch intra-op threads \\[default: torch's]")] = None,
) -> None:
    """Run one paper's experiment: results records and figures in --out."""
    from creditlab.cli_checks import check_reproduce_flags
    from creditlab.experiments import ExperimentContext, load_all, resolve_options

    registry = load_all()
    if list_ or name is None:
        for exp_name in registry.names():
            experiment = registry.get(exp_name)
            typer.echo(f"{exp_name:28s} {experiment.description}")
            for key, option in experiment.options.items():
                typer.echo(f"{'':30s}--opt {key}=...  {option.help} (takes {option.describe(null=False)})")
        return
    if name not in registry:
        raise _fail(f"unknown experiment {name!r}; valid: {', '.join(registry.names())}")
    experiment = registry.get(name)
    out_dir = Path(out or f"runs/reproduce/{name}")
    try:  # every flag and option is checked before the experiment starts
        check_reproduce_flags(device=device, out=str(out_dir), data_dir=data_dir, threads=threads)
        options = resolve_options(experiment, _parse_options(opt, "--opt"))
    except CreditlabError as exc:
        raise _fail(str(exc)) from exc
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    try:
        ctx = ExperimentContext(quick=quick, device=device, out_dir=out_dir, data_dir=data_dir, seed=seed,
                                options=options)
        records = experiment.run(ctx)
    except DivergenceError as exc:
        raise _fail(str(exc), code=3) from exc
    except CreditlabError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"{name}: {len(records)} records in {ctx.out_dir / 'results.jsonl'}")


@app.command()
def bench(
    suite: Annotated[str, typer.Argument(help="suite name (quick, paper, perf: creditlab/configs/bench) "
                                              "or a YAML path")],
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    out: Annotated[str, typer.Option(help="results store (JSONL)")] = "results/bench.jsonl",
    data_dir: Annotated[str | None, typer.Option(help="dataset directory")] = None,
) -> None:
    """Run a benchmark suite; skips entries that already have a record for this config and commit."""
    from creditlab.bench.runner import run_suite
    from creditlab.cli_checks import check_bench_flags

    try:
        check_bench_flags(device=device, out=out, data_dir=data_dir)
        run_suite(suite, device=device, out=Path(out), data_dir=data_dir)
    except CreditlabError as exc:
        raise _fail(str(exc)) from exc


@app.command()
def report(
    results: Annotated[list[str] | None, typer.Argument(help="JSONL files or directories")] = None,
    format_: Annotated[str, typer.Option("--format", help="md or html")] = "md",
    out: Annotated[str, typer.Option(help="output directory for the report and PNGs")] = "results/report",
    readme: Annotated[str | None, typer.Option(help="also rewrite this README's results section (between "
                                                    "the results:begin/end comment markers)")] = None,
    docs: Annotated[str | None, typer.Option(help="also write the documentation's generated sections into "
                                                  "DOCS/generated (paper and rule pages include them)")] = None,
) -> None:
    """Tables and plots from results records; with --readme, the README's generated results section;
    with --docs, the documentation's generated sections."""
    from creditlab.report.build import build_report
    from creditlab.report.docs import write_docs_sections
    from creditlab.report.readme import update_readme

    paths = [Path(p) for p in (results or ["results"])]
    try:
        path = build_report(paths, Path(out), format_)
        if readme:
            update_readme(Path(readme), paths, Path(out))
        if docs:
            write_docs_sections(paths, Path(docs))
    except CreditlabError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"report written to {path}" + (f"; results section of {readme} rewritten" if readme else "")
               + (f"; generated sections of {docs} written" if docs else ""))


def main() -> None:
    """Entry point of the ``creditlab`` command."""
    try:
        app()
    except DivergenceError as exc:  # each command turns its own errors into messages; these are the rest
        typer.echo(f"error: {exc}", err=True)
        sys.exit(3)
    except CreditlabError as exc:  # bad input found late: a message and exit 2, never a traceback
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted; rerun with --resume to continue from the last checkpoint", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
