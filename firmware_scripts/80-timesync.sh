#!/usr/bin/env bash
# 80-timesync: one clock for the whole store. Order numbers, business days and
# ticket timers need every device to agree, with or without the internet.
#
#   hub        chrony: takes the time from the internet (Debian's pool) when it
#              can, and serves it to the store's LAN; with no internet it keeps
#              serving its own clock (local stratum), so the store still agrees
#   kiosk/kds/counter  systemd-timesyncd, asking the hub: the first boot writes
#              /etc/systemd/timesyncd.conf.d/restobox.conf with the hub's
#              address from the enrollment (restobox-device.conf)
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

case "$RB_ROLE" in
    hub)
        write_file /etc/chrony/conf.d/restobox.conf 0644 root:root <<'EOF'
# Written by firmware_scripts/80-timesync.sh: the hub is the store's clock.
# The kiosks and kitchen screens ask it (systemd-timesyncd, NTP=the hub).
allow 10.0.0.0/8
allow 172.16.0.0/12
allow 192.168.0.0/16
# Without the internet, keep serving this clock so the store still agrees.
local stratum 10
EOF
        ;;
    kiosk | kds | counter)
        # Enabled as Debian does it; the server comes with the enrollment.
        ensure_symlink /etc/systemd/system/sysinit.target.wants/systemd-timesyncd.service \
            /lib/systemd/system/systemd-timesyncd.service
        say "  the hub's address is set by the first boot, from the enrollment"
        ;;
esac
