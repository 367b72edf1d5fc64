#!/usr/bin/env bash
# Installs what the `cuda` build of minitron needs on Debian 12 (bookworm):
#   nvidia-cuda-dev      CUDA 11.8 headers (cuda.h, cublas_v2.h) and link libraries
#                        (libcuda.so stub, libcublas.so): enough for
#                        `go vet -tags cuda` and `go build -tags cuda`.
#   nvidia-cuda-toolkit  nvcc, only needed to regenerate the committed PTX
#                        (`make ptx`); pass --toolkit to install it as well.
# Both live in Debian's non-free component, which is added to the apt sources
# (with contrib) when missing. Safe to run again: it does nothing when the
# files are already there.
set -euo pipefail

want_toolkit=0
for a in "$@"; do
	case "$a" in
	--toolkit) want_toolkit=1 ;;
	-h|--help) sed -n '2,10p' "$0"; exit 0 ;;
	*) echo "install-cuda-dev.sh: unknown argument $a (want --toolkit)" >&2; exit 2 ;;
	esac
done

have_dev() {
	[ -f /usr/include/cuda.h ] && [ -f /usr/include/cublas_v2.h ] &&
		ls /usr/lib/*/libcublas.so /usr/lib/*/libcuda.so 2>/dev/null | grep -q libcuda
}
have_nvcc() { command -v nvcc >/dev/null 2>&1; }

pkgs=()
have_dev || pkgs+=(nvidia-cuda-dev)
[ "$want_toolkit" = 1 ] && ! have_nvcc && pkgs+=(nvidia-cuda-toolkit)
if [ ${#pkgs[@]} -eq 0 ]; then
	echo "install-cuda-dev.sh: CUDA headers/libraries already installed"
	exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# Add contrib and non-free to the Debian entries of the apt sources.
# deb822 files (*.sources, Debian 12's default) carry a Components: line per
# stanza; one-line files (sources.list, *.list) name components after the suite.
changed=0
for f in /etc/apt/sources.list.d/*.sources; do
	[ -f "$f" ] || continue
	grep -q 'debian' "$f" || continue
	if grep -E '^Components:' "$f" | grep -vqE ' non-free( |$)'; then
		$SUDO sed -i -E '/^Components:/{/ contrib( |$)/!s/$/ contrib/; / non-free( |$)/!s/$/ non-free/}' "$f"
		changed=1
	fi
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
	[ -f "$f" ] || continue
	if grep -E '^deb(-src)? .*debian' "$f" | grep -vqE ' non-free( |$)'; then
		$SUDO sed -i -E '/^deb(-src)? .*debian/{/ contrib( |$)/!s/$/ contrib/; / non-free( |$)/!s/$/ non-free/}' "$f"
		changed=1
	fi
done
[ "$changed" = 1 ] && echo "install-cuda-dev.sh: added contrib non-free to the apt sources"

echo "install-cuda-dev.sh: installing ${pkgs[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
have_dev || { echo "install-cuda-dev.sh: cuda.h/cublas_v2.h/libcublas.so still missing after install" >&2; exit 1; }
