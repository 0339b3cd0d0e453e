# Custom Beam SDK container for the preprocessing job on Dataflow (Runner v2), Flink or Spark: the Beam
# Python 3.11 SDK image of the pinned Beam version + the pinned requirements + the recsys package.
#
#   docker build -f docker/beam.Dockerfile -t <registry>/recsys-beam:0.1.0 .        (from the repository root)
#   docker push <registry>/recsys-beam:0.1.0
#   python -m pipelines.preprocess --input='gs://<bucket>/criteo/day_*.gz' --output_dir=gs://<bucket>/tfrecords \
#       --runner=DataflowRunner --project=<project> --region=<region> --temp_location=gs://<bucket>/tmp \
#       --sdk_container_image=<registry>/recsys-beam:0.1.0 --sdk_location=container
#
# The SDK version inside the image must equal the launcher's (apache-beam==2.77.0 in requirements.txt).
FROM apache/beam_python3.11_sdk:2.77.0

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_USE_LEGACY_KERAS=1

WORKDIR /opt/recsys

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY setup.py .
COPY recsys recsys
COPY pipelines pipelines
COPY configs configs
RUN pip install --no-cache-dir --no-deps --no-build-isolation .

# The runner starts the SDK harness through the image's boot program with its own arguments: keep it.
ENTRYPOINT ["/opt/apache/beam/boot"]
