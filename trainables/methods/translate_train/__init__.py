"""The translate_train method: see ``method``."""

from trainables.method_spec import MethodSpec
from trainables.methods.translate_train.method import TranslateTrain

# No preparation step of its own: its arm trains on the paired translations (``parallel_path``) that
# X-Mixup's step prepares in the same experiment (the xmixup_* experiments).
SPEC = MethodSpec("translate_train", TranslateTrain)
