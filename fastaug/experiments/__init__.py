"""Experiments that are not ``--augment`` methods, one module each, on the training layer's loop
primitive. ``influence_hist``: the self-influence / training-loss histograms of a logistic regression
on MNIST (``fastaug influence-hist``)."""
