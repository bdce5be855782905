"""Label values with a meaning of their own, shared by the data, the losses and the metrics."""

IGNORE_INDEX = -100  # token labels the loss and the metric skip: later sub-words, special tokens, padding
