"""Backups: logical dumps streamed to storage, archived binlogs, restore to a point in time.

Layout of one storage (a directory or an S3 prefix):

    backups/<name>/dump.sql.gz      the compressed dump, written first
    backups/<name>/manifest.json    written last: a backup without it is incomplete
    binlogs/<source>/<file>         closed binlog files of one server, copied as they are
    binlogs/<source>/<file>.json    written after its file: size, sha256, when it was closed
"""
