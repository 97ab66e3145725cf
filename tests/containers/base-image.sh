#!/usr/bin/env bash
# Build a minimal Debian image with Python from the host's own Debian release and apt mirror,
# and import it into podman as TAG (no registry needed): mmdebstrap --variant=minbase with
# python3, python3-venv, python3-pip and ca-certificates, piped into `podman import`.
# The host's extra CA certificates are copied in, so that pip inside a build trusts the TLS
# proxy of the network it runs on.
# Usage: base-image.sh TAG
set -euo pipefail
tag=${1:?usage: base-image.sh TAG}
# shellcheck disable=SC1091
. /etc/os-release
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
[ -f "$sources" ] || { echo "base-image.sh: no apt sources on this host ($sources)" >&2; exit 1; }
mmdebstrap --quiet --variant=minbase \
  --include=python3,python3-venv,python3-pip,ca-certificates \
  --customize-hook='sync-in /usr/local/share/ca-certificates /usr/local/share/ca-certificates' \
  --customize-hook='chroot "$1" update-ca-certificates' \
  --customize-hook='chroot "$1" apt-get clean' \
  "${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}" - "$sources" \
  | podman import --change 'CMD ["/bin/bash"]' - "$tag"
