#!/usr/bin/env bash
# 35-services: the role's systemd units from systemd/ into /etc/systemd/system,
# with restobox.target (started at boot: WantedBy=multi-user.target).
#
#   hub        restobox-broker, restobox-hub, restobox-printing, restobox-sync,
#              restobox-web (the table QR ordering page), enabled now (the
#              first boot makes their credentials before they start)
#   kiosk/kds/counter  restobox-kiosk, restobox-kds or restobox-counter,
#              installed but enabled only by the first boot, once the device
#              knows its name, its hub and its password
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

units_dir="$RB_SOURCE/systemd"
read -r -a units <<<"$(role_units "$RB_ROLE")"

[[ -f "$units_dir/restobox.target" ]] || die "$units_dir/restobox.target is missing: is --source a Restobox checkout?"
copy_file "$units_dir/restobox.target" /etc/systemd/system/restobox.target 0644 root:root
enable_unit restobox.target "$units_dir/restobox.target"

missing=()
for u in "${units[@]}"; do
    if [[ ! -f "$units_dir/$u" ]]; then
        missing+=("$u")
        continue
    fi
    copy_file "$units_dir/$u" "/etc/systemd/system/$u" 0644 root:root
    if [[ "$RB_ROLE" == hub ]]; then
        enable_unit "$u" "$units_dir/$u"
    fi
done

if [[ ${#missing[@]} -gt 0 ]]; then
    warn "the source has no ${missing[*]} (in $units_dir): this $RB_ROLE will not start its program by itself; run provision again with a checkout that has it"
fi
