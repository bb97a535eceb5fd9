"""Experiments that are not ``--augment`` methods, one module or package each, on the training layer's
loop primitive:

* ``subsample/``: the data-subsampling experiment (``fastaug subsample``): scores which points to
  augment, trains no ``--augment`` method;
* ``toy2d``: the 2-D toy of the influence loop (``fastaug toy2d``);
* ``influence_hist``: the self-influence / training-loss histograms of a logistic regression on
  MNIST (``fastaug influence-hist``)."""
