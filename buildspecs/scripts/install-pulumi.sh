#!/usr/bin/env bash
# Installs the pinned Pulumi CLI after checking it against the release's published checksums.
set -euo pipefail
version="${PULUMI_VERSION:?PULUMI_VERSION is not set}"
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64) arch=arm64 ;;
  *) echo "unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
file="pulumi-v${version}-linux-${arch}.tar.gz"
cd /tmp
curl -fsSLO "https://github.com/pulumi/pulumi/releases/download/v${version}/${file}"
curl -fsSL -o pulumi-checksums.txt "https://github.com/pulumi/pulumi/releases/download/v${version}/pulumi-${version}-checksums.txt"
grep " ${file}\$" pulumi-checksums.txt | sha256sum -c -
tar -xzf "${file}" -C /opt
/opt/pulumi/pulumi version
