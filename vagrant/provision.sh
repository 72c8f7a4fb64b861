#!/usr/bin/env bash
# Vagrant provisioning: install netlab inside the VM, outside the synced folder, then show it works.
#
# The checkout is synced into the VM (/vagrant), often together with the host's own .venv, whose
# interpreter is a path only the host has (with rsync), or which the host and the guest would keep
# overwriting (with NFS, vboxsf or virtiofs). So the VM gets its own virtualenv, /opt/netlab by
# default, made by the same install steps as on a host (../setup.sh, the one place that lists what
# netlab needs), and `netlab` on root's PATH and sudo's secure_path through /usr/local/bin/netlab.
# The host's .venv is never read or written. Ends by bringing up the vxlan lab (as 'provision',
# so that 'netlab up vxlan' is still free afterwards), pinging across nodes and tearing it down.
#
#   vagrant/provision.sh [--venv DIR]       (as root; NETLAB_EXTRAS as for setup.sh)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
VENV=/opt/netlab
while [ $# -gt 0 ]; do
  case "$1" in
    --venv) VENV=${2:?provision.sh: --venv needs a directory}; shift 2 ;;
    *) echo "provision.sh: unknown option '$1' — use --venv DIR" >&2; exit 2 ;;
  esac
done
case "$VENV" in /*) ;; *) echo "provision.sh: --venv must be an absolute path" >&2; exit 2 ;; esac
case "$VENV/" in "$SRC"/*) echo "provision.sh: $VENV is inside the synced folder $SRC; use a path outside it" >&2; exit 2 ;; esac

"$SRC/setup.sh" --venv "$VENV"

ln -sfn "$VENV/bin/netlab" /usr/local/bin/netlab
# sudo resets PATH to secure_path; Debian's and Ubuntu's include /usr/local/bin, a changed one may not
if [ -d /etc/sudoers.d ] && command -v sudo >/dev/null && ! sudo -n sh -c 'command -v netlab' >/dev/null 2>&1; then
  echo 'Defaults secure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"' > /etc/sudoers.d/netlab
  chmod 0440 /etc/sudoers.d/netlab
fi

export PATH="/usr/local/bin:$PATH"
netlab list
netlab up vxlan --name provision
netlab exec provision node1-pod1 -- ping -c 3 -W 5 10.244.2.2
netlab down provision
echo "provision.sh: netlab is ready — vagrant ssh -c 'sudo netlab up vxlan'" >&2
