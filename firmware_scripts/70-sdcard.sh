#!/usr/bin/env bash
# 70-sdcard: spare the SD card and survive power cuts.
#
#   - the journal in RAM (Storage=volatile, at most 48 MB): logs do not wear
#     the card; they are gone after a restart
#   - --data-partition SPEC: that partition is mounted on /var/lib/restobox,
#     where every database lives (nofail: a missing partition does not stop the
#     boot, but the services, which need /var/lib/restobox through
#     StateDirectory=, do not start without it and say so)
#   - --read-only-root (kiosk/kds/counter): the swap file is switched off (it would sit
#     in RAM), and the first boot, once the device is enrolled, turns the
#     overlay on (firmware_scripts/read-only-root on): from the next restart
#     the root file system is read-only and every change to it lives in RAM
#     until the next restart. /var/lib/restobox, a partition of its own, stays
#     writable and durable (overlayroot=tmpfs:recurse=0).
#   - --writable-root: the overlay is turned off again (from the next restart)
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

write_file /etc/systemd/journald.conf.d/restobox.conf 0644 root:root <<'EOF'
# Written by firmware_scripts/70-sdcard.sh: the journal lives in RAM, to spare
# the SD card. Logs of the current boot only: `journalctl -b`.
[Journal]
Storage=volatile
RuntimeMaxUse=48M
EOF

# /etc/fstab: our line for /var/lib/restobox, and no other line for it.
fstab=/etc/fstab
current=""
if [[ -f "$(R "$fstab")" ]]; then current="$(<"$(R "$fstab")")"; fi
kept="$(awk '!($2 == "/var/lib/restobox") && $0 != "# Restobox data (firmware_scripts/70-sdcard.sh)"' <<<"$current")"
if [[ -n "$RB_DATA_PARTITION" ]]; then
    wanted="${kept:+$kept$'\n'}# Restobox data (firmware_scripts/70-sdcard.sh)
$RB_DATA_PARTITION  /var/lib/restobox  ext4  defaults,noatime,nofail,x-systemd.device-timeout=20s  0  2"
else
    wanted="$kept"
fi
if [[ -f "$(R "$fstab")" || -n "$RB_DATA_PARTITION" ]]; then
    if [[ "$wanted" == "$current" ]]; then
        unchanged "$fstab"
    else
        write_file "$fstab" 0644 root:root <<<"$wanted"
        # Mounted from the next boot on, over what is in the directory now.
        if [[ -n "$RB_DATA_PARTITION" ]] && live && ! mountpoint -q /var/lib/restobox &&
            [[ -n "$(find /var/lib/restobox -mindepth 1 -print -quit 2>/dev/null)" ]]; then
            warn "/var/lib/restobox already holds data, which the partition $RB_DATA_PARTITION will hide from the next restart: stop the services (systemctl stop restobox.target), mount the partition elsewhere, copy the data onto it (cp -a /var/lib/restobox/. /mnt/), then restart"
        fi
    fi
fi

if [[ "$RB_READ_ONLY_ROOT" == yes ]]; then
    # dphys-swapfile keeps swap in /var/swap, which the overlay would put in RAM.
    mask_unit dphys-swapfile.service
    say "  the root becomes read-only after the first boot (read-only-root on)"
else
    if [[ -L "$(R /etc/systemd/system/dphys-swapfile.service)" ]]; then
        remove_path /etc/systemd/system/dphys-swapfile.service
    fi
    if cmdline_has overlayroot; then
        overlay_off
    fi
fi
