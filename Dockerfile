# The operator's image: slim Python, the package and its dependencies, a non-root user, and the client
# tools of both flavors (the backup and restore Jobs run this image too).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mysql_operator ./mysql_operator
RUN pip install --no-cache-dir --prefix=/install .

# MySQL's own client tools (mysql, mysqldump, mysqlbinlog) of the pinned LTS series (MYSQL_SERIES in
# hack/versions.env): Debian sid packages them, built for a newer glibc than the image's Debian, so
# they are copied with every library they load and sid's loader into /opt/mysql and run through
# wrappers in /opt/mysql/bin (the operator's MYSQL_TOOLS_DIR). The sandbox runs the same packages the
# same way (sandbox/mysql_root.py). Check-Valid-Until=false: the served sid Release file can be past
# its Valid-Until date.
FROM debian:sid-slim AS mysql-client
ARG MYSQL_SERIES=9.7
RUN apt-get -o Acquire::Check-Valid-Until=false update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mysql-client-core \
 && rm -rf /var/lib/apt/lists/*
COPY hack/collect-mysql-client.sh /usr/local/bin/
RUN collect-mysql-client.sh /opt/mysql \
 && /opt/mysql/bin/mysqldump --version | grep -q "Ver ${MYSQL_SERIES}\." \
 || { echo "expected MySQL ${MYSQL_SERIES} client tools" >&2; exit 1; }

FROM python:3.11-slim
LABEL org.opencontainers.image.title="mysql-operator" \
      org.opencontainers.image.description="Kubernetes operator for MySQL 8.4/9.7 LTS and MariaDB clusters"
COPY --from=build /install /usr/local
# MariaDB's tools from Debian (mariadb-dump, mariadb-binlog, mariadb), on PATH by those names. Their
# mysql* compatibility names are MariaDB's too, so MySQL's are never looked up on PATH. zstd and tar
# compress and pack physical backups (backup/physical.py).
RUN apt-get update \
 && apt-get install -y --no-install-recommends mariadb-client mariadb-backup zstd tar \
 && rm -rf /var/lib/apt/lists/*
COPY --from=mysql-client /opt/mysql /opt/mysql
RUN /opt/mysql/bin/mysqldump --version && /opt/mysql/bin/mysqlbinlog --version && mariadb-dump --version
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin operator
USER 10001:10001
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MYSQL_TOOLS_DIR=/opt/mysql/bin
ENTRYPOINT ["python", "-m", "mysql_operator"]
CMD ["run"]
