"""Packet-level troubleshooting exercises: a fault in a real datapath, hints, an honest check."""
