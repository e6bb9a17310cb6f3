"""Time-to-first-spike (TTFS) networks: event-driven single-spike IF layers, STDP learning, NCG.

Modules, one job each:

* :mod:`coding` -- spike times in [0, 1] (1 = silent) from intensities;
* :mod:`event_layer` -- the event-driven single-spike IF layer and the first-spike decision;
* :mod:`stdp` -- the STDP weight changes (error-modulated additive; multiplicative);
* :mod:`ncg` -- Neuronal Competition Groups: neuron-to-class map, intra-class WTA, threshold regulation;
* :mod:`classifier` -- the spiking classification layer (model ``spiking-fc``);
* :mod:`supervised` -- the shared machinery of the supervised STDP rules (``s2stdp``, ``sstdp``, ``rstdp``);
* :mod:`preprocess`, :mod:`extractor`, :mod:`cache` -- the unsupervised STDP-CSNN feature extractor
  (model ``stdp-csnn``) and its feature cache;
* :mod:`cost` -- NeuroBench-style cost figures; :mod:`nir_export` -- NIR export and read-back.
"""
