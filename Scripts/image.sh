#!/usr/bin/env bash
# Builds a minimal OCI image of a Swift program of this package (a Curtain driver/worker executable) without
# Docker: Debian's buildah, vfs storage, chroot isolation. The image holds the executable (its Swift runtime
# linked statically, as this package's executables are on Linux), the few shared libraries it still needs
# (found with ldd), and the CA certificates; nothing else (no shell, no package manager).
#
#   Scripts/image.sh [--product NAME] [--configuration release|debug] [--skip-build] [--target generic|knative|lambda]
#                    [--tag NAME:TAG] [--output FILE.tar]
#
#   --product        the executable product (default: curtain-demo)
#   --configuration  release (default) or debug
#   --skip-build     use the executable already built
#   --target         lambda checks the executable's highest GLIBC_ symbol version against Lambda's provided.al2023
#                    runtime (glibc 2.34) and refuses, with the reason, one that needs newer (the image carries its
#                    own libc, but the same executable deployed as a provided.al2023 zip would not run); knative
#                    sets PORT and CURTAIN_ROLE=http-worker; generic (default) sets nothing
#   --tag            the image's name in buildah's local storage (default: curtain-<product>:latest)
#   --output         also writes the image as an OCI archive (oci-archive) to this file
#
# Prints the image's name, its size, and the archive's path. Needs root (or buildah's rootless setup) and
# installs buildah with apt-get if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

product=curtain-demo
configuration=release
skip_build=0
target=generic
tag=""
output=""
while [ $# -gt 0 ]; do
    case "$1" in
        --product) product="$2"; shift 2 ;;
        --configuration) configuration="$2"; shift 2 ;;
        --skip-build) skip_build=1; shift ;;
        --target) target="$2"; shift 2 ;;
        --tag) tag="$2"; shift 2 ;;
        --output) output="$2"; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "Scripts/image.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$configuration" in release|debug) ;; *) echo "Scripts/image.sh: --configuration must be release or debug, not '$configuration'" >&2; exit 2 ;; esac
case "$target" in generic|knative|lambda) ;; *) echo "Scripts/image.sh: --target must be generic, knative or lambda, not '$target'" >&2; exit 2 ;; esac
tag=${tag:-curtain-$product:latest}

if ! command -v buildah >/dev/null 2>&1; then
    echo "==> installing buildah"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq buildah >/dev/null
fi

if [ "$skip_build" -eq 0 ]; then
    echo "==> swift build -c $configuration --product $product"
    swift build -c "$configuration" --product "$product" >/dev/null
fi
binary="$(swift build -c "$configuration" --show-bin-path)/$product"
[ -x "$binary" ] || { echo "Scripts/image.sh: $binary is not built (drop --skip-build, or check --product)" >&2; exit 1; }

# The newest glibc symbol version the executable needs (what the platform's glibc must have, for a runtime
# that supplies its own, as Lambda's provided.al2023 does).
needs=$( (objdump -T "$binary" 2>/dev/null || true) | (grep -o 'GLIBC_[0-9][0-9.]*' || true) | sed 's/GLIBC_//' | sort -uV | tail -1)
if [ -z "$needs" ]; then
    echo "==> $product needs no glibc (linked statically)"
    needs=0
else
    echo "==> $product needs glibc $needs or newer"
fi
if [ "$target" = lambda ]; then
    newest=$(printf '%s\n%s\n' "$needs" "2.34" | sort -V | tail -1)
    if [ "$newest" != "2.34" ]; then
        echo "Scripts/image.sh: refusing: $product needs glibc $needs, and Lambda's provided.al2023 runtime has glibc 2.34." >&2
        echo "  Build it where glibc is 2.34 or older (an Amazon Linux 2023 container, say), with the Swift runtime linked statically." >&2
        exit 1
    fi
fi

# The image's files: the executable, the shared libraries ldd finds (and the loader), the CA certificates.
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/app" "$root/etc/ssl/certs" "$root/tmp"
chmod 1777 "$root/tmp"
cp "$binary" "$root/app/$product"
if ldd "$binary" 2>&1 | grep -q 'not found'; then
    echo "Scripts/image.sh: $binary needs shared libraries this machine lacks:" >&2
    ldd "$binary" | grep 'not found' >&2
    exit 1
fi
for library in $( (ldd "$binary" 2>/dev/null || true) | grep -o '/[^ ]*' || true); do
    mkdir -p "$root$(dirname "$library")"
    cp -L "$library" "$root$library"
done
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"

export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
container=$(buildah from scratch)
# The working container goes whatever happens (in vfs storage it is a full copy of the image's files).
trap 'rm -rf "$root"; buildah rm "$container" >/dev/null 2>&1 || true' EXIT
buildah copy "$container" "$root" / >/dev/null
buildah config --entrypoint "[\"/app/$product\"]" --workingdir /app --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt "$container"
if [ "$target" = knative ]; then buildah config --env CURTAIN_ROLE=http-worker --env PORT=8080 --port 8080 "$container"; fi
buildah commit --quiet "$container" "$tag" >/dev/null
size=$(buildah inspect --type image --format '{{.Size}}' "$tag" 2>/dev/null || true)
[ -n "$size" ] && [ "$size" != "0" ] || size=$(du -sb "$root" | cut -f1)
echo "==> image $tag: $((size / 1024 / 1024)) MiB ($size bytes)"
if [ -n "$output" ]; then
    rm -f "$output"
    buildah push --quiet "$tag" "oci-archive:$output" >/dev/null
    echo "==> written to $output ($(( $(stat -c %s "$output") / 1024 / 1024 )) MiB)"
fi
