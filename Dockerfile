# One image for the three Dagster services in docker-compose.yml: the code location's gRPC
# server (`user_code`; runs execute there too, under DefaultRunLauncher), the webserver and
# the daemon. Build context: the repository root (.dockerignore keeps out everything else).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/home \
    CTR_HOME=/var/lib/ctr_assets

# The dependencies from the lock (every package pinned, hashes checked), then the package
# itself. dagster.yaml goes beside the source because the package ships it:
# ctr_assets/deploy/dagster.yaml links to it.
WORKDIR /opt/dagster/src
COPY pyproject.toml README.md dagster.yaml ./
COPY requirements/run.txt ./requirements/run.txt
COPY ctr_assets ./ctr_assets
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --require-hashes -r requirements/run.txt \
 && pip install --no-deps --no-build-isolation . \
 && rm -rf /opt/dagster/src

# A non-root user that owns only what it writes: Dagster's local storage (compute logs,
# asset outputs) and the project home (model files). Compose mounts volumes on both; a new
# volume takes this ownership from the image.
RUN groupadd --gid 10001 dagster \
 && useradd --uid 10001 --gid dagster --create-home --shell /usr/sbin/nologin dagster \
 && mkdir -p "$DAGSTER_HOME/storage" "$CTR_HOME" /opt/dagster/app \
 && chown -R dagster:dagster "$DAGSTER_HOME" "$CTR_HOME"

# The instance (every store on PostgreSQL through DAGSTER_POSTGRES_URL) and the workspace
# the webserver and the daemon load (the gRPC server in the `user_code` service).
COPY dagster.yaml $DAGSTER_HOME/dagster.yaml
COPY docker/workspace.yaml /opt/dagster/app/workspace.yaml

USER dagster
WORKDIR /opt/dagster/app
EXPOSE 3000 4000
