"""Everything that touches the kernel lives here; the rest of netlab is pure."""
