"""Training: cross-validated models, tf.data input, confident learning, evaluation."""
