#!/usr/bin/env bash
# 40-broker (hub only): the store broker's configuration in /etc/restobox/broker,
# the directory restobox-broker-user manages:
#
#   mosquitto.conf       the project's restobox/broker_config/mosquitto.conf, as it is
#   acl.base, roles/     the ACL header and the role templates devices are made from
#   passwd, acl, acl.d/, credentials/   made by restobox-broker-user on the
#                        first boot and by `restobox add-device`, never here
#   tls/                 the store CA and the broker's certificate
#                        (ensure_store_tls in lib/common.sh): made by the
#                        first boot, so that no card carries another store's
#                        CA; here only on a hub that has had its first boot
#                        (an upgrade: the new mosquitto.conf needs them at
#                        the broker's next start)
#
# and /usr/local/sbin/restobox-broker-user, which runs the installed script
# on that directory. Debian's own mosquitto.service is masked: Restobox runs
# mosquitto as restobox-broker.service.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

if [[ "$RB_ROLE" != hub ]]; then
    say "  (only the hub runs the broker)"
    exit 0
fi

src="$RB_SOURCE/restobox/broker_config"
dir=/etc/restobox/broker

ensure_dir "$dir" 0755 root:root
copy_file "$src/mosquitto.conf" "$dir/mosquitto.conf" 0644 root:root
copy_file "$src/acl.base" "$dir/acl.base" 0644 root:root
ensure_dir "$dir/roles" 0755 root:root
for f in "$src"/roles/*.acl; do
    copy_file "$f" "$dir/roles/${f##*/}" 0644 root:root
done
# A role the checkout no longer has is no longer offered.
for f in "$(R "$dir/roles")"/*.acl; do
    [[ -e "$f" ]] || continue
    [[ -f "$src/roles/${f##*/}" ]] || remove_path "$dir/roles/${f##*/}"
done

write_file /usr/local/sbin/restobox-broker-user 0755 root:root <<'EOF'
#!/bin/sh
# Per-device broker credentials of this store (see restobox-broker-user --help).
# Role templates come from the broker directory, as on the first boot.
RESTOBOX_BROKER_CONFIG=/etc/restobox/broker
export RESTOBOX_BROKER_CONFIG
exec /opt/restobox/restobox/broker_config/restobox-broker-user "$@"
EOF

if [[ -f "$(R "$dir/credentials/hub.secret")" ]]; then
    ensure_store_tls
    if [[ "$RB_TLS_SERVER_CHANGED" == 1 ]] && live && ! dry; then
        systemctl try-restart restobox-broker.service || true
    fi
else
    say "  (the store CA and the broker's certificate are made at the first boot)"
fi

mask_unit mosquitto.service
