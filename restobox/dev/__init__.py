"""The development harness: what stands in for a store's hardware and the
chain's cloud, so the whole store runs on a laptop and in the tests.

- ``demo``: a whole store on this machine (``restobox demo``, ``./run demo``);
- ``sim``: the virtual kiosk and cooks the demo and the benchmarks drive;
- ``cloud_dev``: a reference cloud receiver (``restobox cloud-dev``);
- ``emulators``: ESC/POS printers on a pty or a TCP port, with status answers;
- ``terminal_sim``: a payment terminal on a pty;
- ``ptydev``: the pty under the emulated devices.

No service imports this package (tests/test_runtime.py checks it); the
commands that start these parts import them only when run.
"""
