"""See every hop: ``netlab trace`` (one probe, decoded at every interface of its path) and
``netlab capture`` (pcap/pcapng or live decode of chosen interfaces).

Modules, from the kernel up:

- :mod:`.bpf` — tcpdump expressions compiled by libpcap, stitched per link type, attached to sockets;
- :mod:`.sniff` — one AF_PACKET socket per namespace, read together from one thread;
- :mod:`.decode` — bytes to a layer stack (Ethernet or raw IP, VXLAN, IP in UDP);
- :mod:`.diff` — what changed between two hops (encapsulation, MAC, TTL, SNAT/DNAT);
- :mod:`.path` — what the plan says: endpoints, namespaces on the path, the expected next step;
- :mod:`.probe` — the probe packet and the filter that recognises it after NAT and inside tunnels;
- :mod:`.evidence` — counters, route lookups and plan diffs where a packet stops;
- :mod:`.engine` — the trace itself; :mod:`.render` its text form;
- :mod:`.pcap` and :mod:`.capture` — files Wireshark/tshark open, and the capture loop.
"""
