"""Rule identification (issue 21): the names of the contract, implemented in :mod:`creditlab.analysis.rule_id`.

Feedforward SL-vs-RL model: :mod:`creditlab.analysis.rule_id.feedforward`; the BMI recurrent network:
:mod:`creditlab.analysis.rule_id.bmi`; identifying creditlab's own rules from training observables:
:mod:`creditlab.analysis.rule_id.library`.
"""

from creditlab.analysis.rule_id.bmi import (
                                            BMISetting,
                                            flow_field,
                                            flow_field_correlation,
                                            predicted_flow_change,
                                            pretrain,
                                            retrain_and_score,
                                            sign_flip_test,
)
from creditlab.analysis.rule_id.feedforward import (
                                            FeedforwardSetting,
                                            expected_rl_update,
                                            identification_accuracy,
                                            mean_cosine,
                                            rl_update,
                                            simulate,
                                            sl_update,
                                            sweep,
)

__all__ = ["BMISetting", "FeedforwardSetting", "expected_rl_update", "flow_field", "flow_field_correlation",
           "identification_accuracy", "mean_cosine", "predicted_flow_change", "pretrain", "retrain_and_score",
           "rl_update", "sign_flip_test", "simulate", "sl_update", "sweep"]
