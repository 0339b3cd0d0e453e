"""The serving contract between training and its consumers, named once (docs/architecture.md, "Contracts").

A trainer workdir holds `saved_model/` (replica r >= 1: `saved_model_<r>/`), a SavedModel whose signature
`serving_default(examples: string[None]) -> {"probabilities": float32[None]}` scores serialized
`tf.train.Example`s. `assets.extra/features.json` inside it describes the data it was trained on, and
`assets.extra/feature_fingerprint` names that data's feature contract (`recsys.data.fingerprint`).

The exporter (`recsys.training.export`) writes this contract; the server, the comparator, the study, the
distillation teacher and the benchmarks read it, all through these names. Plain strings: importing this module
imports neither TensorFlow nor gRPC.
"""

SIGNATURE = "serving_default"
INPUT_KEY = "examples"
OUTPUT_KEY = "probabilities"

# A trainer workdir's SavedModel folder, and the file whose presence makes a folder a SavedModel.
WORKDIR_SAVED_MODEL = "saved_model"
SAVED_MODEL_FILE = "saved_model.pb"
# Extra files next to the model (TF Serving's convention), and the features.json the trainer puts there.
ASSETS_EXTRA = "assets.extra"
FEATURES_FILE = "features.json"
# The feature fingerprint of the data the model was trained on (`recsys.data.fingerprint`), one line.
FINGERPRINT_FILE = "feature_fingerprint"
