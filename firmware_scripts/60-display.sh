#!/usr/bin/env bash
# 60-display (kiosk, kds and counter): the screen and the touch screen.
#
#   - boot to the console (multi-user.target), no desktop: the Kivy app draws
#     straight on the screen (KMS/DRM)
#   - the kernel command line: consoleblank=0 (the screen never blanks; with
#     KMS and no desktop nothing else powers it down), no blinking console
#     cursor (vt.global_cursor_default=0), and the console turned like the
#     screen (fbcon=rotate:N)
#   - Kivy's settings in /etc/restobox/kivy/config.ini (files/kivy-config.ini):
#     the rotation, no mouse pointer, no screen saver, and one input provider
#     (SDL2's mouse events, which carry the touches) so a tap never counts twice
#   - a drop-in that points the screen's unit at those settings (KIVY_HOME;
#     it replaces the unit's /var/lib/restobox/kivy)
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

case "$RB_ROLE" in
    kiosk) unit=restobox-kiosk.service ;;
    kds) unit=restobox-kds.service ;;
    counter) unit=restobox-counter.service ;;
    *)
        say "  (the hub has no screen)"
        exit 0
        ;;
esac
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

ensure_symlink /etc/systemd/system/default.target /lib/systemd/system/multi-user.target

# fbcon counts quarter turns clockwise.
turns=$((RB_ROTATION / 90))
if [[ "$turns" -eq 0 ]]; then
    cmdline_edit "set consoleblank=0" "set vt.global_cursor_default=0" "del fbcon" || true
else
    cmdline_edit "set consoleblank=0" "set vt.global_cursor_default=0" "set fbcon=rotate:$turns" || true
fi

kivy_home=/etc/restobox/kivy
ensure_dir "$kivy_home" 0755 root:root
# Kivy creates these when they are missing; the unit cannot write /etc.
ensure_dir "$kivy_home/mods" 0755 root:root
ensure_dir "$kivy_home/icon" 0755 root:root
template="$(<"$here/files/kivy-config.ini")"
write_file "$kivy_home/config.ini" 0644 root:root <<<"${template//@ROTATION@/$RB_ROTATION}"

# The settings live in /etc with the device's other configuration: a data
# partition mounted on /var/lib/restobox would hide anything the image put
# under it. Kivy only reads them (they are complete, so it never rewrites
# them) and the unit keeps Kivy's log out of files (KIVY_NO_FILELOG).
write_file "/etc/systemd/system/$unit.d/10-restobox-display.conf" 0644 root:root <<EOF
# Written by firmware_scripts/60-display.sh: Kivy's settings for this screen
# (rotation, no pointer, no screen saver, one input provider), read-only in
# /etc rather than under /var/lib/restobox.
[Service]
Environment=KIVY_HOME=$kivy_home
EOF
