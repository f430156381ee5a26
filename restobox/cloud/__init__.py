"""The chain's cloud (``restobox cloud``): every store's events, the chain's
menu, delivery platforms and the owner's dashboard, on PostgreSQL (or SQLite
for one process). See docs/cloud.md."""
