# TF Serving image with one exported model: the official tensorflow/serving image (the C++ model server),
# the trainer's SavedModel copied to /models/ctr/1 (TF Serving's <base>/<name>/<version> layout).
#
#   docker build -f docker/serving.Dockerfile -t recsys-serving:0.1.0 \
#       --build-arg MODEL_DIR=path/to/workdir/saved_model .                  (from the repository root)
#   docker run -p 8500:8500 -p 8501:8501 recsys-serving:0.1.0
#   python -m pipelines.predict_client --server=localhost:8500 --model_name=ctr --data='demo_out/data/part-*'
#
# The same clients work against `python -m pipelines.serve` (docs/serving.md). A later model version is
# served by adding /models/ctr/2 (a volume, or a new image); TF Serving polls and switches to it.
FROM tensorflow/serving:2.21.0

ARG MODEL_DIR=workdir/saved_model

ENV MODEL_NAME=ctr \
    MODEL_BASE_PATH=/models

COPY ${MODEL_DIR} /models/ctr/1

# 8500: gRPC PredictionService / ModelService; 8501: REST (/v1/models/ctr, /v1/models/ctr:predict).
EXPOSE 8500 8501

# The base image's entrypoint: tensorflow_model_server --port=8500 --rest_api_port=8501
#   --model_name=${MODEL_NAME} --model_base_path=${MODEL_BASE_PATH}/${MODEL_NAME} "$@"
ENTRYPOINT ["/usr/bin/tf_serving_entrypoint.sh"]
