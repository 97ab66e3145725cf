# A stand-in for the official `postgres` image, for tests/test_containers.py (no registry there):
# Debian's postgresql package on the test's Debian base image, started by postgres-entrypoint.sh
# with the official image's environment contract (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB,
# data in /var/lib/postgresql/data, port 5432, pg_isready on PATH).
ARG BASE
FROM ${BASE}
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql \
    && apt-get clean && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/lib/postgresql/*/bin /usr/lib/postgresql/bin
ENV PATH=/usr/lib/postgresql/bin:${PATH} \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
EXPOSE 5432
CMD ["/usr/local/bin/postgres-entrypoint.sh"]
