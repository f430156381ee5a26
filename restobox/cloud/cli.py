"""``restobox cloud ...``: run the chain's cloud and look after it.

    restobox cloud serve   [--config cloud.toml] [--database URL] [--port N]
    restobox cloud migrate
    restobox cloud enroll  STORE [--name NAME] [--token-file FILE]
    restobox cloud revoke  STORE
    restobox cloud token   {owner,admin} NAME [--token-file FILE]
    restobox cloud publish-menu FILE
    restobox cloud stores
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("cloud", help="the chain's cloud: every store's events, menus, delivery, the owner's dashboard")
    p.add_argument("--config", help="the cloud's config file (default /etc/restobox/cloud.toml if it exists)")
    p.add_argument("--database", help="postgresql://user@host:port/name or sqlite:///path "
                                      "(default [cloud] database, or $RESTOBOX_CLOUD_DATABASE)")
    cs = p.add_subparsers(dest="cloud_cmd", required=True, metavar="ACTION")
    s = cs.add_parser("serve", help="answer the stores, the gateway, the platforms and the dashboard")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    cs.add_parser("migrate", help="bring the database's schema to this release's (serve does it too)")
    s = cs.add_parser("enroll", help="enrol a store (or give it another token): prints its token")
    s.add_argument("store")
    s.add_argument("--name", default="")
    s.add_argument("--token-file", help="take the token from this file if it exists, else write the new one there")
    s = cs.add_parser("revoke", help="revoke every token of a store: its requests are refused from now on")
    s.add_argument("store")
    s = cs.add_parser("token", help="a token for the owner's dashboard (owner) or the chain's office (admin)")
    s.add_argument("role", choices=("owner", "admin"))
    s.add_argument("name")
    s.add_argument("--token-file", help="take the token from this file if it exists, else write the new one there")
    s = cs.add_parser("publish-menu", help="publish a new chain menu (every store's hub takes it within a minute)")
    s.add_argument("file")
    cs.add_parser("stores", help="the enrolled stores and when each was last heard from")
    p.set_defaults(func=main)


def _token(path: str | None, make) -> str:
    """The token in ``path`` if there is one; else a new one (written there,
    mode 600, when a path was given)."""
    if path and Path(path).exists():
        token = Path(path).read_text(encoding="utf-8").strip()
        if token:
            return make(token)
    token = make(None)
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
    return token


def main(args) -> int:
    from restobox.cloud import config, db
    from restobox.cloud.chain import Chain

    cfg = config.load(args.config, database=args.database,
                      **({"host": args.host, "port": args.port} if args.cloud_cmd == "serve" else {}))
    if args.cloud_cmd == "serve":
        from restobox.cloud.app import serve

        return serve(cfg)
    database = db.connect(cfg.database, pool=2)
    if args.cloud_cmd == "migrate":
        before, after = db.migrate(database)
        print(f"cloud database: schema {before} -> {after}" if before != after else f"cloud database: schema {after}, "
              "nothing to do")
        return 0
    db.migrate(database)
    chain = Chain(database)
    if args.cloud_cmd == "enroll":
        token = _token(args.token_file, lambda t: chain.enroll(args.store, args.name, t))
        print(f"store {args.store} enrolled" + (f"; its token is in {args.token_file}" if args.token_file else
                                                f"; its token (give it to the store's [sync] token_file): {token}"))
        return 0
    if args.cloud_cmd == "revoke":
        n = chain.revoke("store", args.store)
        print(f"store {args.store}: {n} token(s) revoked")
        return 0 if n else 1
    if args.cloud_cmd == "token":
        token = _token(args.token_file, lambda t: chain.issue(args.role, args.name, t))
        print(f"{args.role} {args.name}: " + (f"token in {args.token_file}" if args.token_file else token))
        return 0
    if args.cloud_cmd == "publish-menu":
        from restobox.cli import checked_menu
        from restobox.cloud.chain import Refused
        from restobox.cloud.menus import publish

        menu, status = checked_menu(args.file)
        if menu is None:
            return status
        try:
            print(f"menu {publish(chain, Path(args.file).read_bytes(), 'cli')} published")
        except Refused as r:
            print(f"{args.file}: {r}", file=sys.stderr)
            return 1
        return 0
    if args.cloud_cmd == "stores":
        import time

        for s in chain.stores():
            seen = f"{time.time() - s['last_contact']:.0f} s ago" if s["last_contact"] else "never"
            print(f"{s['store_id']:<16} {s['name']:<20} events {s['events']:>9}  last heard {seen}")
        return 0
    return 2
