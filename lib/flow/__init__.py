"""Flow matching (the flow edition): the straight noise-to-image path, the velocity interface and the one Euler loop
(with, beyond the spec, the path's ancestral step).

The MNIST flow models' adapter is ``lib.flow.mnist`` (imported on its own: it needs ``lib.train.training``, which uses this
package's path).
"""

from lib.flow.euler import (AfterStep, Predict, StepCallback, VelocityModel, ancestral_step, cfg_predictor, euler,
                            euler_times, guided_velocities, posterior_noise, sample, scale_from_course_w)
from lib.flow.path import interpolate, noise_estimate, one_step_estimate, per_row, velocity_target

__all__ = ["AfterStep", "Predict", "StepCallback", "VelocityModel", "ancestral_step", "cfg_predictor", "euler",
           "euler_times", "guided_velocities", "interpolate", "noise_estimate", "one_step_estimate", "per_row",
           "posterior_noise", "sample", "scale_from_course_w", "velocity_target"]
