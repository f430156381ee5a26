# Shortcuts; ./run sets up the machine (venv, packages) on first use.
PY := .venv/bin/python

.PHONY: setup test demo rush rush-quick chaos

setup:
	./run setup

test:
	./run test

demo:
	./run demo

# The lunch rush: 5 minutes calm (latency), 5 minutes of chaos, the ledger check.
rush: setup
	$(PY) -m restobox.cli rush

rush-quick: setup
	$(PY) -m restobox.cli rush --quick

# The long chaos run: 30 minutes, a kill every 1.6 s (over 1,000 kills).
chaos: setup
	$(PY) -m restobox.cli rush --calm-s 60 --chaos-s 1800 --kill-every 1.6
