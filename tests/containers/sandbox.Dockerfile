# The Domo + S3 sandbox as a compose service, for tests/test_containers.py only: the
# deployment's image plus the development distribution (dev/: the sandbox, moto), started by
# `python -m domo_assets_dev.sandbox_service` (Domo on 127.0.0.1:8000, S3 on 127.0.0.1:5000, relayed
# on ports 8001 and 5001 of every address for the host).
# Build context: the repository root, filtered by sandbox.dockerignore.
ARG APP_IMAGE
FROM ${APP_IMAGE}
USER root
COPY constraints.txt /tmp/src/
COPY dev /tmp/src/dev
RUN pip install -c /tmp/src/constraints.txt /tmp/src/dev && rm -rf /tmp/src
USER dagster:dagster
EXPOSE 8001 5001
ENTRYPOINT ["python", "-m", "domo_assets_dev.sandbox_service"]
