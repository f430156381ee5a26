"""The store hub (``restobox hub``): the single writer of the order book.

restobox/hub/service.py is the service (lifecycle, the worker, the one
dispatcher); each kind of message has its handler module beside it.
"""

from restobox.hub.service import ROUTES, SUBSCRIPTIONS, Hub

__all__ = ["Hub", "ROUTES", "SUBSCRIPTIONS"]
