"""Click-log schema, feature metadata, synthetic logs and tf.data input."""
