#!/usr/bin/env bash
# Install everything netlab needs on Debian 12 / Ubuntu 24.04 (as root), then optionally test.
#   ./setup.sh                 apt packages + a virtualenv in .venv with netlab installed
#   ./setup.sh --test [ARGS]   the same, then the whole test suite (what .ci/run does): the host pass,
#                              then the VM pass (tests/vm/tier.py: on the distribution's stock kernel,
#                              the tests needing what this kernel lacks, the fresh-machine and the
#                              provisioning tests); ARGS go to pytest in both
#   ./setup.sh --venv DIR      install into DIR instead of .venv (vagrant/provision.sh: /opt/netlab)
#   ./setup.sh --link-only     only the bare `netlab` command: /usr/local/bin/netlab -> the venv's
# NETLAB_EXTRAS (default test,bench) names the pip extras to install; empty installs netlab alone.
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: netlab builds network namespaces and needs root — run: sudo ./setup.sh $*" >&2
  exit 1
fi

VENV=.venv
TEST=0
LINK_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --venv) VENV=${2:?setup.sh: --venv needs a directory}; shift 2 ;;
    --test) TEST=1; shift; break ;;  # the rest is pytest's
    --link-only) LINK_ONLY=1; shift ;;
    *) echo "setup.sh: unknown option '$1' — use --test [pytest args], --venv DIR or --link-only" >&2; exit 2 ;;
  esac
done
EXTRAS=${NETLAB_EXTRAS-test,bench}

# Kernel-side tools netlab drives, plus the ones labs and tests use (BIRD for Calico, iperf3 for
# bench, tcpdump/tshark for capture, socat for the flannel-udp comparison, graphviz for netlab graph,
# conntrack for the exercises that read and delete conntrack entries).
PKGS="python3 python3-venv python3-pip iproute2 iptables iputils-ping iperf3 bird2 tcpdump tshark ethtool socat procps graphviz conntrack"
# netlab vm: QEMU boots the distribution's stock kernel, the initramfs is busybox-static, kmod's
# depmod indexes the kernel's modules (and its modprobe loads them in the VM), zstd unpacks
# Ubuntu's zstd-compressed kernel and modules.
PKGS="$PKGS qemu-system-x86 busybox-static kmod zstd"
# Only the test suite needs these, and where one cannot be installed it says so and goes on:
# vagrant (for 'vagrant validate' of the Vagrantfile).
TEST_PKGS="vagrant"

missing_of() {
  local p out=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || out="$out $p"
  done
  echo "$out"
}

apt_updated=0
apt_install() {  # apt_install PKG…: install what is missing; returns apt-get's status
  export DEBIAN_FRONTEND=noninteractive
  if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
  # tshark asks whether non-root users may capture; the default (no) is right for netlab.
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

install_packages() {
  local missing
  missing=$(missing_of $PKGS)
  if [ -n "$missing" ]; then
    echo "setup.sh: installing$missing" >&2
    apt_install $missing
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
  if [ "$TEST" = 1 ]; then
    missing=$(missing_of $TEST_PKGS)
    if [ -n "$missing" ]; then
      echo "setup.sh: installing$missing (for the tests)" >&2
      apt_install $missing || echo "setup.sh: could not install$missing — the tests that need it are skipped" >&2
    fi
  fi
}

# The virtualenv uses the distribution's Python, so the same command works on both releases. A
# venv that does not run here (made on another machine: its python links to a path this machine
# does not have, as in a checkout synced into a VM) is made again instead of being trusted.
install_netlab() {
  if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    [ -e "$VENV" ] && echo "setup.sh: $VENV does not run on this machine — making it again" >&2
    /usr/bin/python3 -m venv --clear "$VENV"
  fi
  # pip through the venv's interpreter: a venv's bin/pip script names its interpreter by path
  # editable_mode=compat: a plain path entry instead of setuptools' import-hook finder, which cost
  # ~50 ms at every interpreter start (every netlab command) and widened the moment at which a
  # Ctrl-C lands inside CPython's own start-up, before netlab can catch it
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".${EXTRAS:+[$EXTRAS]}" \
    --config-settings editable_mode=compat
}

# The bare `netlab` of the README's Usage section, also under sudo (its secure_path has
# /usr/local/bin): a symlink to this venv's command. Another program's file of that name (ipspace's
# networklab also installs a `netlab`) is never replaced: it is named, and .venv/bin/netlab works.
# Ours is a symlink whose target is gone (a removed checkout) or is a netlab-cni venv's command;
# NETLAB_COMMAND_LINK moves the link (tests use a scratch path).
link_command() {
  local link=${NETLAB_COMMAND_LINK:-/usr/local/bin/netlab} target old
  target="$(cd "$(dirname "$VENV/bin/netlab")" && pwd)/netlab"
  if [ -e "$link" ] || [ -L "$link" ]; then
    old=$(readlink -m "$link")
    if [ ! -L "$link" ] || { [ -e "$old" ] && ! "$(dirname "$old")/python" -I -c \
        'import importlib.metadata as m; m.distribution("netlab-cni")' >/dev/null 2>&1; }; then
      echo "setup.sh: $link is another program's (not replaced): use $VENV/bin/netlab" >&2; return
    fi
  fi
  mkdir -p "$(dirname "$link")"
  ln -sfn "$target" "$link" && echo "setup.sh: $link -> $target" >&2
}

if [ "$LINK_ONLY" = 1 ]; then link_command; exit; fi
install_packages
install_netlab
link_command

if [ "$TEST" = 1 ]; then
  # Linters first: ruff (E4, E7, E9, F, B) and mypy on netlab/, configured in pyproject.toml.
  "$VENV/bin/ruff" check netlab || { echo "setup.sh: ruff found problems (above)" >&2; exit 1; }
  "$VENV/bin/mypy" || { echo "setup.sh: mypy found problems (above)" >&2; exit 1; }
  set +e
  "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@" tests
  host=$?
  vm=0
  # The VM pass (tests/vm/tier.py): green on CI's 2-core machine under TCG (15 tests, ~10 min);
  # NETLAB_VM_PASS=0 leaves it out for a quick local run (CI never sets it).
  if [ "${NETLAB_VM_PASS:-1}" = 1 ]; then
    "$VENV/bin/python" -m tests.vm.tier "$@"
    vm=$?
  else
    echo "setup.sh: VM pass left out (NETLAB_VM_PASS=0)" >&2
  fi
  echo "setup.sh: host pass exit $host, VM pass exit $vm" >&2
  [ "$host" = 0 ] && [ "$vm" = 0 ]
  exit
fi
echo "setup.sh: ready — netlab list" >&2
