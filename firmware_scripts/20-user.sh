#!/usr/bin/env bash
# 20-user: the restobox system user that every Restobox service runs as, and
# the groups that give it its devices without root:
#
#   dialout   serial printers, bump bars and payment terminals (/dev/ttyUSB*, ttyACM*)
#   lp        USB printers (/dev/usb/lp*, and raw USB through the udev rules of 50-udev)
#   video, render, input   kiosk, kds and counter: the screen (/dev/dri/*) and
#             the touch screen, keyboard-style bump bars and the counter's
#             barcode scanner (a USB keyboard) (/dev/input/*)
#
# Its home is /var/lib/restobox, the data directory (StateDirectory=restobox
# in the units).
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

user=restobox
groups=(dialout lp)
case "$RB_ROLE" in
    kiosk | kds | counter) groups+=(video render input) ;;
esac

# On a scratch root, the shadow tools edit DIR/etc/{passwd,group,shadow,gshadow}.
prefix=()
live || prefix=(--prefix "$RB_ROOT")

for f in /etc/passwd /etc/group; do
    [[ -f "$(R "$f")" ]] || live || dry ||
        die "$(R "$f") does not exist: --root must hold a Raspberry Pi OS root file system (at least etc/passwd and etc/group)"
done

in_group() {
    [[ -f "$(R /etc/group)" ]] &&
        awk -F: -v g="$1" -v u="$2" '$1 == g { n = split($4, m, ","); for (i = 1; i <= n; i++) if (m[i] == u) found = 1 }
            END { exit !found }' "$(R /etc/group)"
}

for g in "$user" "${groups[@]}"; do
    if [[ -n "$(gid_of "$g")" ]]; then
        unchanged "group $g"
    else
        run groupadd "${prefix[@]}" --system "$g"
        changed "group $g"
    fi
done

if [[ -n "$(uid_of "$user")" ]]; then
    unchanged "user $user"
else
    run useradd "${prefix[@]}" --system --gid "$user" --home-dir /var/lib/restobox --no-create-home \
        --shell /usr/sbin/nologin --comment "Restobox services" "$user"
    changed "user $user"
fi

for g in "${groups[@]}"; do
    if in_group "$g" "$user"; then
        unchanged "user $user in group $g"
    else
        run usermod "${prefix[@]}" --append --groups "$g" "$user"
        changed "user $user in group $g"
    fi
done

ensure_dir /etc/restobox 0755 root:root
ensure_dir /var/lib/restobox 0750 "$user:$user"
