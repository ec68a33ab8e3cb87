# syntax=docker/dockerfile:1
# A TensorFlow worker (MultiWorkerMirroredStrategy; TPU hosts too): `python -m tandem.launch -- <command>`
# builds TF_CONFIG, the example jobs in /workspace.
#
#   docker build -f images/tensorflow-worker.Dockerfile -t tandem/tensorflow-worker:0.1.0 .      (from the repository root)
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=1

RUN groupadd --gid 1000 tandem \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/tandem --shell /usr/sbin/nologin tandem \
 && install -d -o 1000 -g 1000 /workspace

WORKDIR /opt/tandem
COPY pyproject.toml README.md ./
COPY operator/ operator/
# The project itself, from this context: its pins live in pyproject.toml (the extras pin
# torch / tensorflow-cpu / ray / kopf exactly), so DL3013 (pin each package named here) does not
# apply. Ray's client mode (ray://, what workers and the operator use) needs Ray's `client` extra
# (grpcio), which the `metrics` extra does not name: add it at the version already installed.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[tensorflow,metrics]" \
 && pip install --no-cache-dir "ray[client]==$(python -c 'import ray; print(ray.__version__)')" \
 && rm -rf /opt/tandem/operator /root/.cache \
 && python -m tandem.launch --help >/dev/null \
 && python -c "import tensorflow as tf; tf.distribute.MultiWorkerMirroredStrategy"

WORKDIR /workspace
COPY --chown=1000:1000 jobs/ jobs/

USER 1000:1000
EXPOSE 2222
ENTRYPOINT ["python", "-m", "tandem.launch", "--"]
CMD ["python", "jobs/train_keras.py", "--epochs", "1"]
