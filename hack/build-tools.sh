#!/usr/bin/env bash
# Build the local Kubernetes toolchain from source through the Go module proxy, cached by version.
#
#   hack/build-tools.sh            build whatever is missing (a warm cache prints nothing, < 1 s)
#   hack/build-tools.sh --path     print the bin dir callers should put on PATH
#
# Binaries land in $TOOLS_CACHE/tools/<tool>-<version>/<tool> and are symlinked into
# $TOOLS_CACHE/bin/<tool> (TOOLS_CACHE defaults to $HOME/.cache/mysql-operator).
# Each build's wall time and peak RSS go to $TOOLS_CACHE/tools/<tool>-<version>/build-stats.txt.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"

CACHE="${TOOLS_CACHE:-$HOME/.cache/mysql-operator}"
TOOLS="$CACHE/tools"
BIN="$CACHE/bin"
SRC="$CACHE/src"

if [[ "${1:-}" == "--path" ]]; then
    echo "$BIN"
    exit 0
fi

K8S_TOOLS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)

have() { [[ -x "$TOOLS/$1-$2/$1" ]]; }

link() {  # link <tool> <version>
    mkdir -p "$BIN"
    local want="$TOOLS/$1-$2/$1"
    [[ "$(readlink "$BIN/$1" 2>/dev/null)" == "$want" ]] || ln -sfn "$want" "$BIN/$1"
}

missing=()
for t in "${K8S_TOOLS[@]}"; do have "$t" "$KUBERNETES_VERSION" || missing+=("$t"); done
have etcd "$ETCD_VERSION" || missing+=(etcd)
have helm "$HELM_VERSION" || missing+=(helm)

if [[ ${#missing[@]} -eq 0 ]]; then
    for t in "${K8S_TOOLS[@]}"; do link "$t" "$KUBERNETES_VERSION"; done
    link etcd "$ETCD_VERSION"
    link helm "$HELM_VERSION"
    exit 0
fi

command -v go >/dev/null || { echo "build-tools: 'go' not found on PATH (need Go >= 1.24)" >&2; exit 1; }
# One build at a time on this machine (a second caller waits, then finds the tools built).
mkdir -p "$CACHE"
exec 9>"$CACHE/.build.lock"
flock -w 3600 9 || { echo "build-tools: another build holds $CACHE/.build.lock" >&2; exit 1; }
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
# 2 cores: one binary at a time, and the compiler's own parallelism left at its default.

# wrapper_module <dir> <module-name> <go.mod body>: a throwaway module outside the repo.
wrapper_module() {
    mkdir -p "$1"
    printf 'module %s\n\ngo 1.24.0\n\n%s\n' "$2" "$3" > "$1/go.mod"
}

# build <tool> <version> <wrapper dir> <package> <ldflags...>
build() {
    local tool="$1" version="$2" dir="$3" pkg="$4"; shift 4
    local out="$TOOLS/$tool-$version"
    mkdir -p "$out"
    echo "build-tools: building $tool $version ($pkg)" >&2
    local start end
    start=$(date +%s)
    (cd "$dir" && /usr/bin/time -v -o "$out/time.txt" \
        go build -trimpath -ldflags "-s -w $*" -o "$out/$tool.tmp" "$pkg")
    end=$(date +%s)
    mv "$out/$tool.tmp" "$out/$tool"
    local rss
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out/time.txt")
    printf 'tool=%s version=%s wall_seconds=%s peak_rss_kib=%s\n' "$tool" "$version" $((end - start)) "$rss" \
        | tee "$out/build-stats.txt" >&2
    link "$tool" "$version"
}

k8s_ldflags() {
    local v="$KUBERNETES_VERSION" major minor flags=""
    major="$(echo "${v#v}" | cut -d. -f1)"
    minor="$(echo "${v#v}" | cut -d. -f2)"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        flags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
        flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    echo "$flags"
}

k8s_wrapper() {
    local dir="$SRC/kubernetes-$KUBERNETES_VERSION"
    [[ -f "$dir/.ready" ]] && { echo "$dir"; return; }
    local staging_version="v0.${KUBERNETES_VERSION#v1.}"
    # k/k requires its staging modules at v0.0.0 and points them at ./staging; we point them at
    # their published tags instead. The list comes from k/k's own go.mod.
    local kmod
    kmod="$(cd "$(mktemp -d)" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" \
        | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
    local replaces
    replaces="$(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\t\1 => \1 '"$staging_version"'#p' "$kmod")"
    [[ -n "$replaces" ]] || { echo "build-tools: no staging modules found in $kmod" >&2; exit 1; }
    wrapper_module "$dir" "local/kubernetes-tools" \
        "require k8s.io/kubernetes $KUBERNETES_VERSION

replace (
$replaces
)"
    touch "$dir/.ready"
    echo "$dir"
}

for t in "${K8S_TOOLS[@]}"; do
    have "$t" "$KUBERNETES_VERSION" && { link "$t" "$KUBERNETES_VERSION"; continue; }
    dir="$(k8s_wrapper)"
    # shellcheck disable=SC2046
    build "$t" "$KUBERNETES_VERSION" "$dir" "k8s.io/kubernetes/cmd/$t" $(k8s_ldflags)
done

if have etcd "$ETCD_VERSION"; then link etcd "$ETCD_VERSION"; else
    dir="$SRC/etcd-$ETCD_VERSION"
    # server/v3's go.mod replaces its siblings with ../ paths, so `go install ...@v` refuses it.
    wrapper_module "$dir" "local/etcd-tools" "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    build etcd "$ETCD_VERSION" "$dir" go.etcd.io/etcd/server/v3
fi

if have helm "$HELM_VERSION"; then link helm "$HELM_VERSION"; else
    dir="$SRC/helm-$HELM_VERSION"
    wrapper_module "$dir" "local/helm-tools" "require helm.sh/helm/v3 $HELM_VERSION"
    k8s_minor="$(echo "${KUBERNETES_VERSION#v}" | cut -d. -f2)"
    build helm "$HELM_VERSION" "$dir" helm.sh/helm/v3/cmd/helm \
        -X "helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
        -X "helm.sh/helm/v3/internal/version.gitTreeState=clean" \
        -X "helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1" \
        -X "helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$k8s_minor" \
        -X "helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1" \
        -X "helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$k8s_minor"
fi
