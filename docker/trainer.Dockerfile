# Trainer image: TensorFlow GPU base + the pinned requirements + the recsys package; entrypoint the trainer.
#
#   docker build -f docker/trainer.Dockerfile -t recsys-trainer:0.1.0 .          (from the repository root)
#   docker run --gpus all -v "$PWD/demo_out:/data" recsys-trainer:0.1.0 \
#       --config=configs/criteo_toy.py --workdir=/data/workdir --config.data.train='/data/data/part-*.tfrecord.gz'
#
# TPU variant (GKE TPU node pools): the TensorFlow wheel must be the TPU build matching the pinned version:
#   docker build -f docker/trainer.Dockerfile -t recsys-trainer-tpu:0.1.0 \
#       --build-arg TPU_TENSORFLOW="tensorflow-tpu==<same version as requirements.txt>" .
# In a cluster, TF_CONFIG is derived per replica by recsys.training.tf_config (see docker/README.md).
FROM tensorflow/tensorflow:2.21.0-gpu

ARG TPU_TENSORFLOW=""
ARG TPU_WHEELS=https://storage.googleapis.com/libtpu-tf-releases/index.html

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=1

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# setup.py requires Python 3.11: fail here, clearly, if the base image moved to another Python.
RUN python3 -c "import sys; assert sys.version_info[:2] == (3, 11), 'recsys needs Python 3.11, got ' + sys.version" \
    && (command -v python >/dev/null || ln -s "$(command -v python3)" /usr/local/bin/python)

WORKDIR /opt/recsys

# Dependencies first (their own layer: rebuilt only when the pins change). TensorFlow is already in the base
# image at the pinned version, so pip keeps it.
COPY requirements.txt .
RUN python -m pip install --no-cache-dir -r requirements.txt

# TPU_TENSORFLOW is a pinned requirement (name==version) given at build time.
# hadolint ignore=DL3013
RUN if [[ -n "${TPU_TENSORFLOW}" ]]; then \
      python -m pip uninstall -y tensorflow \
      && python -m pip install --no-cache-dir "${TPU_TENSORFLOW}" -f "${TPU_WHEELS}"; \
    fi

COPY setup.py .
COPY recsys recsys
COPY pipelines pipelines
COPY configs configs
RUN python -m pip install --no-cache-dir --no-deps --no-build-isolation . \
    && (id -u 1000 >/dev/null 2>&1 || useradd --create-home --uid 1000 recsys)

# Unprivileged (numeric, so Kubernetes' runAsNonRoot can check it). Configs are read by path
# (--config=configs/...): the working directory stays the folder that holds them.
USER 1000
ENTRYPOINT ["python", "-m", "pipelines.train"]
