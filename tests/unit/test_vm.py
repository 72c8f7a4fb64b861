"""The pure parts of netlab vm: KVM or TCG, QEMU's argv, the kernel package, vmlinuz -> vmlinux,
modules.dep, the cpio writer, the guest scripts and the VM pass's selection."""

from __future__ import annotations

import lzma
import struct
import subprocess

import pytest

from netlab.errors import NetlabError
from netlab.vm import accel, guest, initramfs, kernel, qemu, runner
from tests.vm import features, tier


# ---- accel ------------------------------------------------------------------------------------

def test_hardware_kvm_is_used():
    assert accel.choose(True, frozenset({"kvm", "kvm_intel"})).name == "kvm"
    assert accel.choose(True, frozenset({"kvm", "kvm_amd"})).name == "kvm"


def test_pvm_only_kvm_falls_back_to_tcg_and_says_why():
    a = accel.choose(True, frozenset({"kvm", "kvm_pvm"}))
    assert a.name == "tcg" and "PVM" in a.reason


def test_no_usable_dev_kvm_is_tcg():
    assert accel.choose(False, frozenset({"kvm", "kvm_intel"})).name == "tcg"
    assert accel.choose(True, frozenset({"kvm"})).name == "tcg"  # no vendor module behind it


def test_override_wins_and_a_bad_one_is_one_line():
    assert accel.choose(False, frozenset(), "kvm").name == "kvm"
    assert accel.choose(True, frozenset({"kvm_intel"}), "tcg").name == "tcg"
    with pytest.raises(NetlabError) as e:
        accel.choose(True, frozenset(), "xen")
    assert "NETLAB_VM_ACCEL" in str(e.value) and " — " in str(e.value)


def test_detect_reads_sys_module(tmp_path):
    (tmp_path / "kvm_pvm").mkdir()
    a = accel.detect(tmp_path)
    assert a.name == "tcg"


# ---- qemu argv --------------------------------------------------------------------------------

def spec(**kw) -> qemu.Spec:
    base = dict(kernel="/c/vmlinux", initrd="/c/i.cpio", cmdline="console=ttyS0", accel="tcg", mem_mb=1024, cpus=2,
                shares=(qemu.Share("netlabroot", "/", readonly=True), qemu.Share("netlabctl", "/tmp/a,b")),
                ports=(qemu.Port("netlab.stdout", 5), qemu.Port("netlab.stderr", 7)), console="/tmp/con.log")
    base.update(kw)
    return qemu.Spec(**base)


def opt(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_argv_boots_vmlinux_with_max_cpu_no_reboot_and_no_network():
    a = qemu.argv(spec())
    assert a[0] == "qemu-system-x86_64" and "-no-reboot" in a and "-nodefaults" in a
    assert opt(a, "-kernel") == ["/c/vmlinux"] and opt(a, "-initrd") == ["/c/i.cpio"]
    assert opt(a, "-cpu") == ["max"] and opt(a, "-m") == ["1024"] and opt(a, "-smp") == ["2"]
    assert opt(a, "-accel") == ["tcg,thread=multi"]
    assert "-netdev" not in a and "-nic" not in a
    assert opt(a, "-serial") == ["file:/tmp/con.log"]


def test_argv_kvm_and_user_network_when_asked():
    a = qemu.argv(spec(accel="kvm", net=True))
    assert opt(a, "-accel") == ["kvm"] and opt(a, "-netdev") == ["user,id=net0,ipv6=off"]


def test_shares_root_read_only_and_paths_escaped():
    fsdevs = opt(qemu.argv(spec()), "-fsdev")
    assert fsdevs[0] == "local,id=fs0,path=/,security_model=none,multidevs=remap,readonly=on"
    assert "path=/tmp/a,,b," in fsdevs[1] and "readonly" not in fsdevs[1]
    devices = opt(qemu.argv(spec()), "-device")
    assert "virtio-9p-pci,fsdev=fs0,mount_tag=netlabroot" in devices


def test_ports_write_into_the_passed_descriptors():
    a = qemu.argv(spec())
    chardevs = opt(a, "-chardev")
    assert chardevs == ["file,id=port0,path=/proc/self/fd/5,append=on", "file,id=port1,path=/proc/self/fd/7,append=on"]
    assert "virtserialport,bus=vser0.0,nr=1,chardev=port0,name=netlab.stdout" in opt(a, "-device")


def test_interactive_console_is_stdio_with_signals_to_the_guest():
    a = qemu.argv(spec(console=None, ports=()))
    assert "stdio,id=con,mux=on,signal=off" in opt(a, "-chardev") and opt(a, "-serial") == ["chardev:con"]
    assert opt(a, "-mon") == ["chardev=con"]


def test_kernel_cmdline():
    c = qemu.kernel_cmdline()
    assert "console=ttyS0" in c and "panic=-1" in c and "quiet" in c
    assert "quiet" not in qemu.kernel_cmdline(quiet=False)


# ---- kernel package resolution ----------------------------------------------------------------

APT_DEPENDS = """linux-image-amd64
  Depends: linux-image-6.1.0-57-amd64
  Recommends: firmware-linux-free
"""
UBUNTU_DEPENDS = """linux-image-generic
  Depends: linux-image-6.8.0-51-generic
  Depends: linux-firmware
 |Depends: linux-modules-extra-6.8.0-51-generic
"""


def test_meta_package_per_distribution():
    assert kernel.meta_package("debian", "amd64") == "linux-image-amd64"
    assert kernel.meta_package("ubuntu", "amd64") == "linux-image-generic"


def test_parse_depends_takes_the_versioned_image():
    assert kernel.parse_depends(APT_DEPENDS, "linux-image-") == ["linux-image-6.1.0-57-amd64"]
    assert kernel.parse_depends(UBUNTU_DEPENDS, "linux-image-") == ["linux-image-6.8.0-51-generic"]
    assert kernel.parse_depends(UBUNTU_DEPENDS, "linux-modules-") == ["linux-modules-extra-6.8.0-51-generic"]
    assert kernel.parse_depends("linux-image-amd64\n", "linux-image-") == []


def test_version_and_packages():
    assert kernel.version_of("linux-image-6.1.0-57-amd64") == "6.1.0-57-amd64"
    assert kernel.version_of("linux-image-unsigned-6.8.0-51-generic") == "6.8.0-51-generic"
    v = "6.8.0-51-generic"
    assert kernel.packages_for(v, f"linux-image-{v}", {f"linux-modules-{v}", f"linux-modules-extra-{v}"}) == \
        [f"linux-image-{v}", f"linux-modules-{v}", f"linux-modules-extra-{v}"]
    assert kernel.packages_for("6.1.0-57-amd64", "linux-image-6.1.0-57-amd64", set()) == ["linux-image-6.1.0-57-amd64"]


def test_os_release_id():
    assert kernel.os_release_id('PRETTY_NAME="Debian GNU/Linux 12"\nID=debian\n') == "debian"
    assert kernel.os_release_id('ID="ubuntu"\n') == "ubuntu"


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NETLAB_VM_CACHE", str(tmp_path))
    assert kernel.cache_dir() == tmp_path
    monkeypatch.delenv("NETLAB_VM_CACHE")
    assert str(kernel.cache_dir()) == "/var/cache/netlab/vm"


# ---- vmlinuz -> vmlinux -----------------------------------------------------------------------

def bzimage(payload: bytes, setup_sects: int = 3) -> bytes:
    """A minimal bzImage: boot sector and setup sectors, header fields, then the payload."""
    img = bytearray(((setup_sects or 4) + 1) * 512)
    img[0x1F1] = setup_sects
    img[0x202:0x206] = b"HdrS"
    offset = 100
    struct.pack_into("<II", img, 0x248, offset, len(payload))
    return bytes(img) + b"\0" * offset + payload + struct.pack("<I", 12345)  # the appended size


ELF = b"\x7fELF" + b"\x02\x01\x01" + bytes(200)


def test_extract_vmlinux_xz_and_gzip():
    xz = lzma.compress(ELF, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    assert kernel.extract_vmlinux(bzimage(xz)) == ELF
    gz = subprocess.run(["gzip", "-c"], input=ELF, capture_output=True, check=True).stdout
    assert kernel.extract_vmlinux(bzimage(gz, setup_sects=0)) == ELF  # 0 setup sectors means 4


def test_extract_vmlinux_refuses_what_is_not_a_bzimage():
    with pytest.raises(NetlabError):
        kernel.extract_vmlinux(b"\x7fELF" + bytes(1000))
    with pytest.raises(NetlabError) as e:
        kernel.extract_vmlinux(bzimage(b"BZh9" + bytes(50)))
    assert "compression" in str(e.value)


# ---- initramfs --------------------------------------------------------------------------------

DEP = """kernel/fs/9p/9p.ko: kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko kernel/net/9p/9pnet.ko
kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko
kernel/fs/netfs/netfs.ko:
kernel/net/9p/9pnet.ko:
kernel/net/9p/9pnet_virtio.ko.xz: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/fs/overlayfs/overlay.ko:
"""


def test_load_order_puts_dependencies_first_once():
    dep = initramfs.parse_modules_dep(DEP)
    order = initramfs.load_order(("9pnet_virtio", "9p", "overlay", "virtio_pci"), dep, {"virtio_pci"})
    assert order == ["kernel/net/9p/9pnet.ko", "kernel/drivers/virtio/virtio_ring.ko", "kernel/net/9p/9pnet_virtio.ko.xz",
                     "kernel/fs/netfs/netfs.ko", "kernel/fs/fscache/fscache.ko", "kernel/fs/9p/9p.ko",
                     "kernel/fs/overlayfs/overlay.ko"]


def test_a_missing_module_is_one_line():
    with pytest.raises(NetlabError) as e:
        initramfs.load_order(("9p",), {}, set())
    assert "'9p'" in str(e.value)


def test_module_name():
    assert initramfs.module_name("kernel/net/9p/9pnet_virtio.ko.xz") == "9pnet_virtio"
    assert initramfs.module_name("kernel/drivers/x/virtio-foo.ko") == "virtio_foo"


def test_cpio_is_read_back_by_cpio(tmp_path):
    blob = initramfs.cpio([("bin", initramfs.S_IFDIR | 0o755, b"", (0, 0)),
                           ("bin/hello", initramfs.S_IFREG | 0o755, b"#!/bin/sh\necho hi\n", (0, 0)),
                           ("bin/sh", initramfs.S_IFLNK | 0o777, b"busybox", (0, 0))])
    assert len(blob) % 512 == 0 and blob.startswith(b"070701")
    # read it back by the newc layout (cpio(1) may not be installed): names, modes, data
    entries, pos = [], 0
    while True:
        head = blob[pos:pos + 110]
        fields = [int(head[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        namesize, filesize, mode = fields[11], fields[6], fields[1]
        name = blob[pos + 110:pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        data = blob[pos:pos + filesize]
        pos += filesize + (-filesize % 4)
        if name == "TRAILER!!!":
            break
        entries.append((name, mode, data))
    assert entries == [("bin", 0o040755, b""), ("bin/hello", 0o100755, b"#!/bin/sh\necho hi\n"), ("bin/sh", 0o120777, b"busybox")]


# ---- guest scripts and environment ------------------------------------------------------------

def test_boot_script_mounts_root_read_only_under_an_overlay_and_a_fresh_run():
    s = guest.boot_script(guest.Boot("6.1.0-57-amd64", "/var/cache/netlab/vm/6.1.0-57-amd64/root/lib/modules/6.1.0-57-amd64",
                                     "/usr/lib/modules/6.1.0-57-amd64", "/tmp/netlab-vm-x", (("netlabrw0", "/tmp/out dir"),)))
    assert "ro,cache=loose netlabroot /lower" in s
    assert "lowerdir=/lower,upperdir=/up/upper,workdir=/up/work overlay /newroot" in s
    assert "mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /newroot/run" in s
    assert "netlabrw0 '/newroot/tmp/out dir'" in s  # quoted, at the host's path
    assert s.rstrip().endswith("exec switch_root /newroot /bin/sh /tmp/netlab-vm-x/stage2.sh")
    # the modules are bound before anything can hide their path
    assert s.index("mount -o bind") < s.index("tmpfs /newroot/run")


def test_stage2_runs_the_command_quoted_on_the_ports_and_records_its_status():
    s = guest.stage2_script(guest.Command(("sh", "-c", "exit 7"), "/work/x", (("A", "it's"),), "/tmp/c"))
    assert "sh -c 'exit 7' </dev/null >\"$out\" 2>\"$err\"" in s
    assert "export A='it'\"'\"'s'" in s and "cd /work/x" in s
    assert 'echo $? > "$ctl/rc"' in s and s.rstrip().endswith("echo b > /proc/sysrq-trigger")
    assert "mknod -m 0666 /dev/net/tun c 10 200" in s and "modprobe virtio_net" not in s
    assert "modprobe virtio_net" in guest.stage2_script(guest.Command(("true",), "/", (), "/tmp/c", net=True))


def test_interactive_stage2_is_a_login_shell_on_the_console():
    s = guest.stage2_script(guest.Command((), "/", (), "/tmp/c", term_size=(50, 120)))
    assert "setsid -c -w /bin/bash -l <>/dev/ttyS0" in s and "rows 50 cols 120" in s


def test_guest_env_puts_the_running_interpreter_first_and_drops_the_session():
    env = dict(runner.guest_env({"PATH": "/root/.pyenv/shims:/usr/bin", "SSH_AUTH_SOCK": "/x", "LANG": "C.UTF-8",
                                 "BASH_FUNC_x%%": "() {}", "BAD\nKEY": "1"}, "/work/main/.venv/bin"))
    assert env["PATH"].split(":")[:3] == ["/work/main/.venv/bin", "/root/.pyenv/shims", "/usr/bin"]
    assert "/sbin" in env["PATH"].split(":")
    assert "SSH_AUTH_SOCK" not in env and env["LANG"] == "C.UTF-8" and env["NETLAB_IN_VM"] == "1"
    assert not [k for k in env if not k.isidentifier()]


def test_rw_shares_must_be_directories_and_never_the_root(tmp_path):
    assert runner.check_rw((str(tmp_path),)) == (str(tmp_path),)
    with pytest.raises(NetlabError):
        runner.check_rw((str(tmp_path / "nope"),))
    with pytest.raises(NetlabError):
        runner.check_rw(("/",))


# ---- the VM pass's selection ------------------------------------------------------------------

def test_vm_pass_selects_exactly_the_missing_features_plus_fresh_and_in_vm():
    assert tier.expression(["ipip", "netem"]) == "needs_ipip or needs_netem or fresh or in_vm"
    assert tier.expression([]) == "fresh or in_vm"


def test_vm_pass_verdict():
    assert tier.verdict(5, {}) == 0  # nothing to run is fine
    assert tier.verdict(0, {"skipped": 1}) == 1  # a skip inside the VM hides what the pass is for
    assert tier.verdict(1, {"skipped": 0}) == 1 and tier.verdict(0, {"skipped": 0}) == 0


def test_vm_pass_pytest_argv_keeps_given_paths():
    a = tier.pytest_argv("/v/python", "fresh", "/o/j.xml", ["-x"])
    assert a[-1] == "tests" and "-x" in a and a[a.index("-rs") + 2] == "fresh"
    assert tier.pytest_argv("/v/python", "fresh", "/o/j.xml", ["tests/kernel"])[-1] == "tests/kernel"


def test_every_feature_has_a_registered_marker():
    text = (tier.ROOT / "pyproject.toml").read_text()
    for f in features.FEATURES:
        assert f'"{features.marker(f)}:' in text
    for m in ("fresh", "in_vm", "vm"):
        assert f'"{m}:' in text


def test_vm_pass_runs_only_the_files_the_host_collected():
    out = "tests/kernel/test_a.py::test_x[calico-ipip]\ntests/kernel/test_a.py::test_y\ntests/kernel/test_b.py::t\n\n3 tests collected"
    assert tier.files_of(out) == ["tests/kernel/test_a.py", "tests/kernel/test_b.py"]
    a = tier.pytest_argv("/v/python", "fresh", "/o/j.xml", [], ["tests/kernel/test_a.py"])
    assert a[-1] == "tests/kernel/test_a.py"
    assert tier.pytest_argv("/v/python", "fresh", "/o/j.xml", ["tests/kernel"], ["tests/kernel/test_a.py"])[-1] == "tests/kernel"
    collect = tier.pytest_argv("/v/python", "fresh", None, ["-x"])  # the host's collection: the same selection
    assert "--collect-only" in collect and "--junitxml" not in collect and collect[-2:] == ["-x", "tests"]
