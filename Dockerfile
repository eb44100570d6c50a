# The operator's image: slim Python, the package and its dependencies, a non-root user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mysql_operator ./mysql_operator
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="mysql-operator" \
      org.opencontainers.image.description="Kubernetes operator for MySQL 8.4 and MariaDB clusters"
COPY --from=build /install /usr/local
# The backup and restore Jobs run this image too: they need the dump, binlog and client tools.
RUN apt-get update \
 && apt-get install -y --no-install-recommends mariadb-client mariadb-backup \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin operator
USER 10001:10001
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
ENTRYPOINT ["python", "-m", "mysql_operator"]
CMD ["run"]
