"""Whether a host can be reached: the network edge that downloads (weights, presets, datasets) meet.

Offline, a download is refused before any work with a message naming what works without the
network, rather than failing mid-run. Keras-free.
"""

import socket

TIMEOUT_SECONDS = 3.0


def reachable(host, port=443, timeout=TIMEOUT_SECONDS):
    """True if a TCP connection to `host:port` opens within `timeout` seconds."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False
