#!/bin/sh
# Copy MySQL's client tools, every shared library they load and the dynamic loader of the system they
# were built for into DEST (default /opt/mysql), and write wrappers DEST/bin/<tool> that run each tool
# through that loader. The tools then run on an older glibc: the operator image's Debian, as the
# sandbox runs them from its MySQL root (sandbox/mysql_root.py does the same for a whole root).
#
#   collect-mysql-client.sh [DEST]          in the Dockerfile's Debian sid stage
#   SYSROOT=ROOT collect-mysql-client.sh D  from a root file system on this machine (a check of the
#                                           script without building the image; D is a host path)
set -eu
DEST="${1:-/opt/mysql}"
SYSROOT="${SYSROOT:-}"
TOOLS="mysql mysqldump mysqlbinlog mysqladmin"

loader=""
for candidate in /lib64/ld-linux-x86-64.so.2 /lib/ld-linux-aarch64.so.1; do
    [ -e "$SYSROOT$candidate" ] && loader="$SYSROOT$candidate" && break
done
[ -n "$loader" ] || { echo "collect-mysql-client: no dynamic loader under '$SYSROOT/'" >&2; exit 1; }
libraries=""
for dir in "$SYSROOT"/usr/lib/*-linux-gnu "$SYSROOT"/lib/*-linux-gnu; do
    [ -d "$dir" ] && libraries="$libraries${libraries:+:}$dir"
done

mkdir -p "$DEST/bin" "$DEST/libexec" "$DEST/lib"
cp -L "$loader" "$DEST/lib/ld.so"
for tool in $TOOLS; do
    cp -L "$SYSROOT/usr/bin/$tool" "$DEST/libexec/$tool"
    # `ld.so --list` is what ldd runs: "name => /path (address)" for each library the tool loads.
    "$loader" --library-path "$libraries" --list "$SYSROOT/usr/bin/$tool" \
        | awk '$2 == "=>" && $3 ~ /^\// {print $3}' \
        | while read -r library; do cp -L "$library" "$DEST/lib/"; done
    cat >"$DEST/bin/$tool" <<WRAPPER
#!/bin/sh
exec $DEST/lib/ld.so --library-path $DEST/lib --argv0 $DEST/libexec/$tool $DEST/libexec/$tool "\$@"
WRAPPER
    chmod 0755 "$DEST/bin/$tool"
done
"$DEST/bin/mysqldump" --version
