"""Budgeted augmentation: which points to augment, by loss and leave-one-out influence (the
data-subsampling paper, ``seeds/efficient-augmentation-via-data-subsampling.txt``, end to end).

One job per module:

* :mod:`.augmentations`: the paper's deterministic augmentation sets (translate, rotate, crop),
  batched through ``fastaug.warp``;
* :mod:`.features`: the feature CNN (LeNet), featurisation, frozen or retrained feature sources;
* :mod:`.regression`: L2 logistic regression by Newton's method on the device, sklearn's ``C``
  mapped, the objective's Hessian from ``fastaug.influence``;
* :mod:`.scores`: training loss and LOO self-influence of every training point;
* :mod:`.policies`: baseline / random_prop / det_prop / random_inverse / det_inverse with update
  and downweight;
* :mod:`.curve`: one accuracy curve (points added in a policy's order, refit at checkpoints);
* :mod:`.experiment`: the whole experiment for one augmentation;
* :mod:`.outputs`, :mod:`.figures`: curves.json, auc.csv, table1, summary.json, curves.png, scores.png.

Usage: ``python -m fastaug subsample --augmentation rotate`` or ``run_experiment(SubsampleConfig(...))``
then ``write_outputs(result, dir)``. Conventions: ``docs/subsample.md``.
"""
from .augmentations import AUGMENTATIONS, Augmentation, build_augmentation
from .curve import CurveResult, run_curve
from .experiment import ExperimentResult, SubsampleConfig, default_checkpoints, run_experiment
from .features import CurveData, FeatureConfig, FrozenFeatures, RetrainedFeatures, featurize, train_feature_model
from .outputs import auc_table, summarize_curves, table1, trapezoid_auc, write_outputs
from .policies import PAPER_TABLE_POLICIES, POLICY_NAMES, Policy, parse_policy, policy_order, sample_weights
from .regression import LogisticRegressionL2, RegressionHessian, l2_coefficient
from .scores import SCORES, compute_scores

__all__ = [
    "AUGMENTATIONS", "Augmentation", "build_augmentation", "CurveResult", "run_curve", "ExperimentResult",
    "SubsampleConfig", "default_checkpoints", "run_experiment", "CurveData", "FeatureConfig", "FrozenFeatures",
    "RetrainedFeatures", "featurize", "train_feature_model", "auc_table", "summarize_curves", "table1",
    "trapezoid_auc", "write_outputs", "POLICY_NAMES", "PAPER_TABLE_POLICIES", "Policy", "parse_policy",
    "policy_order", "sample_weights", "LogisticRegressionL2", "RegressionHessian", "l2_coefficient", "SCORES",
    "compute_scores",
]
