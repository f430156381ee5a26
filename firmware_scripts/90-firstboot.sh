#!/usr/bin/env bash
# 90-firstboot: the unit that gives the device its identity when it boots,
# restobox-firstboot.service, which runs /opt/restobox/firmware_scripts/firstboot
# before any Restobox service starts, on every boot (doing nothing once done):
#
#   hub        makes the broker credentials of the hub's own devices (hub,
#              printing, sync, staff-1, monitor-1) and their configs
#   kiosk/kds/counter  reads its enrollment from the boot partition
#              (/boot/firmware/restobox/), installs its password, writes its
#              config, deletes the password from the boot partition, and
#              enables its program
#
# Nothing secret is in the image: a card can be copied before its first boot.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

copy_file "$here/files/restobox-firstboot.service" /etc/systemd/system/restobox-firstboot.service 0644 root:root
enable_unit restobox-firstboot.service "$here/files/restobox-firstboot.service"

