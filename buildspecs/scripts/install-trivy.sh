#!/usr/bin/env bash
# Installs the pinned Trivy after checking it against the release's published checksums.
set -euo pipefail
version="${TRIVY_VERSION:?TRIVY_VERSION is not set}"
case "$(uname -m)" in
  x86_64) arch=64bit ;;
  aarch64) arch=ARM64 ;;
  *) echo "unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
file="trivy_${version}_Linux-${arch}.tar.gz"
cd /tmp
curl -fsSLO "https://github.com/aquasecurity/trivy/releases/download/v${version}/${file}"
curl -fsSL -o trivy-checksums.txt "https://github.com/aquasecurity/trivy/releases/download/v${version}/trivy_${version}_checksums.txt"
grep "  ${file}\$" trivy-checksums.txt | sha256sum -c -
tar -xzf "${file}" -C /usr/local/bin trivy
trivy --version
