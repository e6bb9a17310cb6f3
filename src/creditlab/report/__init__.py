"""The report: results records -> tables, plots and the README's generated section.

Imports run one way: ``render`` (document blocks and their Markdown/HTML) imports nothing of
creditlab; ``tables`` and ``plots`` read records (and ``creditlab.papers``); ``build`` puts them
together (and asks the experiment registry for each experiment's own tables); ``readme`` rewrites
the README's generated section. Experiments import ``render`` (and ``creditlab.papers``), never
``build``; nothing here is imported by ``render`` or ``papers``. This ``__init__`` imports nothing,
so ``import creditlab.report.render`` stays light.
"""
