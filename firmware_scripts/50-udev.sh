#!/usr/bin/env bash
# 50-udev: stable names for printers, bump bars and payment terminals.
#
# /etc/restobox/devices.conf lists them (NAME KIND VENDOR PRODUCT [SERIAL];
# see files/devices.conf); this step turns it into
# /etc/udev/rules.d/70-restobox.rules, so a receipt printer is always
# /dev/restobox-printer-receipt, whatever USB port it is in and whatever
# ttyUSBn the kernel gave it, owned by a group the restobox user is in.
#
# --devices FILE installs FILE as devices.conf; without it an existing
# devices.conf is kept, and a new card gets the commented example.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
conf=/etc/restobox/devices.conf
rules=/etc/udev/rules.d/70-restobox.rules

if [[ -n "$RB_DEVICES" ]]; then
    input="$RB_DEVICES"
elif [[ -f "$(R "$conf")" ]]; then
    input="$(R "$conf")"
else
    input="$here/files/devices.conf"
fi

# Checked before anything is written: a wrong line names itself.
rendered="# Written by firmware_scripts/50-udev.sh from $conf: edit that file, not this one.
# Each device gets /dev/restobox-NAME and a group of the restobox user."
names=" "
n=0
while IFS= read -r line || [[ -n "$line" ]]; do
    n=$((n + 1))
    line="${line%$'\r'}"
    line="${line%%#*}"
    read -r -a f <<<"$line"
    [[ ${#f[@]} -gt 0 ]] || continue
    where="$input line $n"
    [[ ${#f[@]} -eq 4 || ${#f[@]} -eq 5 ]] ||
        die "$where: expected NAME KIND VENDOR PRODUCT [SERIAL], found ${#f[@]} fields"
    name="${f[0]}" kind="${f[1]}" vendor="${f[2],,}" product="${f[3],,}" serial="${f[4]:-}"
    [[ "$name" =~ $RB_NAME_RE ]] || die "$where: bad name '$name': use 1-32 characters a-z, 0-9 and '-'"
    [[ "$names" != *" $name "* ]] || die "$where: the name '$name' is used twice"
    names+="$name "
    [[ "$vendor" =~ ^[0-9a-f]{4}$ ]] || die "$where: vendor id '${f[2]}' is not 4 hex digits (lsusb shows ID VENDOR:PRODUCT)"
    [[ "$product" =~ ^[0-9a-f]{4}$ ]] || die "$where: product id '${f[3]}' is not 4 hex digits (lsusb shows ID VENDOR:PRODUCT)"
    [[ -z "$serial" || "$serial" =~ ^[A-Za-z0-9._:-]{1,64}$ ]] ||
        die "$where: serial '$serial' may hold only letters, digits and . _ : -"
    match="ATTRS{idVendor}==\"$vendor\", ATTRS{idProduct}==\"$product\""
    [[ -z "$serial" ]] || match+=", ATTRS{serial}==\"$serial\""
    case "$kind" in
        tty) rule="SUBSYSTEM==\"tty\", $match, SYMLINK+=\"restobox-$name\", GROUP=\"dialout\", MODE=\"0660\"" ;;
        lp) rule="SUBSYSTEM==\"usbmisc\", KERNEL==\"lp[0-9]*\", $match, SYMLINK+=\"restobox-$name\", GROUP=\"lp\", MODE=\"0660\"" ;;
        usb) rule="SUBSYSTEM==\"usb\", ENV{DEVTYPE}==\"usb_device\", $match, SYMLINK+=\"restobox-$name\", GROUP=\"lp\", MODE=\"0660\"" ;;
        *) die "$where: kind '$kind' is not one of tty, lp, usb" ;;
    esac
    rendered+=$'\n'"# $name ($kind)"$'\n'"$rule"
done <"$input"

if [[ "$input" != "$(R "$conf")" ]]; then
    copy_file "$input" "$conf" 0644 root:root
fi
before="$(grep -c '^changed' "$RB_TALLY" || true)"
write_file "$rules" 0644 root:root <<<"$rendered"
after="$(grep -c '^changed' "$RB_TALLY" || true)"
# (In a scratch root always listed, so its manifest is the same every run.)
if [[ "$after" -gt "$before" ]] || ! live; then
    on_target udevadm control --reload
    on_target udevadm trigger --action=add --subsystem-match=tty --subsystem-match=usbmisc --subsystem-match=usb
fi
