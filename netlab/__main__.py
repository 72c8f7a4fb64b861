"""``python -m netlab``: the same entry point as the console script (see :mod:`netlab.entry`)."""

try:
    from .entry import main
except KeyboardInterrupt:  # Ctrl-C while even the tiny entry module loads
    import sys

    sys.stderr.write("netlab: interrupted — nothing was changed\n")
    raise SystemExit(130) from None

main()
