#!/usr/bin/env bash
# Install everything netlab needs on Debian 12 / Ubuntu 24.04 (as root), then optionally test.
#   ./setup.sh            apt packages + a virtualenv in .venv with netlab installed
#   ./setup.sh --test     the same, then the whole test suite (what .ci/run does)
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: netlab builds network namespaces and needs root — run: sudo ./setup.sh $*" >&2
  exit 1
fi

# Kernel-side tools netlab drives, plus the ones labs and tests use (BIRD for Calico, iperf3 for
# bench, tcpdump/tshark for capture, socat for the flannel-udp comparison).
PKGS="python3 python3-venv python3-pip iproute2 iptables iputils-ping iperf3 bird2 tcpdump tshark ethtool socat procps"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup.sh: installing$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # tshark asks whether non-root users may capture; the default (no) is right for netlab.
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
  # Debian and Ubuntu start (and enable) a BIRD service in the root namespace when bird2 is
  # installed. netlab runs BIRD only inside lab namespaces, so a service it brought in by
  # installing the package is stopped again; a bird2 that was already installed is left alone.
  case " $missing " in
    *" bird2 "*)
      if command -v systemctl >/dev/null && systemctl list-unit-files bird.service >/dev/null 2>&1; then
        systemctl disable --now bird.service >/dev/null 2>&1 || true
        echo "setup.sh: disabled the bird.service that installing bird2 started (netlab runs BIRD in lab namespaces only)" >&2
      fi ;;
  esac
fi

# The virtualenv uses the distribution's Python, so the same command works on both releases.
if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test,bench]'

if [ "${1:-}" = "--test" ]; then
  shift
  exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@" tests
fi
echo "setup.sh: ready — .venv/bin/netlab list" >&2
