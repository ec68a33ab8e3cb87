# syntax=docker/dockerfile:1
# A PyTorch worker: `python -m tandem.launch -- <command>` under torchrun, the example jobs in /workspace.
#
#   docker build -f images/pytorch-worker.Dockerfile -t tandem/pytorch-worker:0.1.0 .      (from the repository root)
#   CPU-only wheels (a much smaller image):
#   docker build -f images/pytorch-worker.Dockerfile --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu ...
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ARG TORCH_INDEX_URL=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

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
RUN pip install --no-cache-dir ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} ".[torch,metrics]" \
 && pip install --no-cache-dir "ray[client]==$(python -c 'import ray; print(ray.__version__)')" \
 && rm -rf /opt/tandem/operator /root/.cache \
 && python -m tandem.launch --help >/dev/null \
 && python -c "import torch, torch.distributed.run"

# The examples' commands are relative to here (python jobs/train_ddp.py ...); checkpoints land
# in it, so it belongs to the worker's user.
WORKDIR /workspace
COPY --chown=1000:1000 jobs/ jobs/

USER 1000:1000
EXPOSE 29500
ENTRYPOINT ["python", "-m", "tandem.launch", "--"]
CMD ["python", "jobs/train_ddp.py", "--epochs", "1"]
