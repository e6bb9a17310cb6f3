"""SketchedSGD / FetchSGD (Ivkin et al. 2019; Rothchild et al. 2020): README's row for the sketched
all-reduce, from the records of ``benchmarks/sketch_accuracy.py`` (run under torchrun; see
``results/sketching/SUMMARY.md``)."""

from __future__ import annotations

from typing import Any

from creditlab.experiments import register_headline
from creditlab.report.headline import Headline
from creditlab.report.tables import latest_by


@register_headline("sketching", order=40)
def sketching_headline(records: list[dict[str, Any]]) -> list[Headline]:
    """Test accuracy and total compression of each reducer beside uncompressed all-reduce."""
    runs = {str(r["name"]).split("/", 1)[1]: r for r in latest_by(
        (r for r in records if str(r.get("name", "")).startswith("sketching-accuracy/")), lambda r: r.get("name"))}
    if "allreduce" not in runs or "sketch" not in runs:
        return []
    config = runs["sketch"]["config"]

    def cell(kind: str) -> str:
        final = runs[kind]["final"]
        return f"{kind} {100 * final['test_accuracy']:.2f}% at {final['compression_ratio']:.1f}×"

    kinds = [k for k in ("sketch", "fetchsgd", "localtopk") if k in runs]
    return [Headline(
        "Ivkin et al. 2019; Rothchild et al. 2020", "sketched all-reduce: accuracy vs total compression, "
        f"{config.get('rule')} {config.get('model')} / {config.get('data')}, {config.get('world_size')} ranks",
        ", ".join(cell(k) for k in kinds) + f"; uncompressed {100 * runs['allreduce']['final']['test_accuracy']:.2f}%",
        "no number for this setting (the papers' benchmarks are larger models)", "not available",
        f"{config.get('epochs')} epochs, seed {config.get('seed')}", "docs/papers/sketching.md")]
