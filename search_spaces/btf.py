"""BTF alone (fine-tuning from the task-fitted encoder): the self-training experiment's BTF knobs.

The ``btf`` arm takes the learning rate and MLM steps the self-training search found; its own
space (searched only if an experiment searched BTF alone) is the same two dimensions.
"""

from search_spaces.self_training import MLM_STEPS
from search_spaces.spec import Choice, Dimension, LogUniform

SPACE: dict[str, Dimension] = {
    "learning_rate": LogUniform(1e-5, 5e-5),
    "mlm_steps": Choice(MLM_STEPS),
}
