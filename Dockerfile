# The Easy Deploy service image.
#   docker build -t easydeploy .
# Multi-stage: dependencies are built in the first stage, the runtime stage has
# no compiler, no pip cache and no build context beyond the code. No secret is
# passed at build time: the service reads them from the environment at run time
# (the ECS task definition injects them from Secrets Manager).

FROM python:3.11.13-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

COPY pyproject.toml README.md ./
COPY bot/ bot/
COPY handlers/ handlers/
RUN pip install --no-cache-dir .


FROM python:3.11.13-slim-bookworm AS runtime

# git: the pipeline clones customers' repositories (bookworm's version, pinned;
# bump it with the base image).
RUN apt-get update \
    && apt-get install -y --no-install-recommends git=1:2.39.5-0+deb12u3 \
    && rm -rf /var/lib/apt/lists/*

# An unprivileged user whose uid/gid match the EFS access point (terraform/efs.tf).
RUN groupadd --system --gid 1000 easydeploy \
    && useradd --system --uid 1000 --gid easydeploy --home-dir /var/lib/easydeploy --create-home --shell /usr/sbin/nologin easydeploy \
    && mkdir -p /mnt/repos \
    && chown easydeploy:easydeploy /mnt/repos

COPY --from=build /opt/venv /opt/venv

# The code runs from /app, so bot/ finds the platform's buildspecs and
# Dockerfile templates beside it at /app/buildspecs. Owned by root: the
# service cannot rewrite its own code or buildspecs.
WORKDIR /app
COPY bot/ /app/bot/
COPY handlers/ /app/handlers/
COPY buildspecs/ /app/buildspecs/

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    EASYDEPLOY_HOST=0.0.0.0 \
    EASYDEPLOY_PORT=3000 \
    EASYDEPLOY_DATA_DIR=/var/lib/easydeploy

USER 1000:1000
EXPOSE 3000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=3).status == 200 else 1)"]

CMD ["easydeploy", "serve"]
