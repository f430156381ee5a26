"""Printing: ticket layouts (pure -> bytes), printer ports, the spooler."""
