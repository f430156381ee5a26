#!/usr/bin/env bash
# 10-packages: the Debian packages each role needs.
#
#   every role   python3-venv (the app's venv), gcc and python3-dev (the
#                optional C speedups some Python packages build), sqlite3
#                (looking into the databases by hand), fonts-noto-cjk
#                (Chinese on screens and in receipt previews), ca-certificates
#   hub          mosquitto (the store broker; Restobox runs its own unit),
#                mosquitto-clients, chrony (serves the store's time), openssl (the
#                store CA and the broker's certificate, made at first boot)
#   kiosk, kds, counter   SDL2 and Mesa (EGL/GLES, GBM, DRM) for Kivy straight on the
#                screen (KMS/DRM, no desktop), systemd-timesyncd (time from the hub),
#                fonts-wqy-microhei (the screens' Chinese: a TrueType face costs
#                a screen far less memory per text size than Noto's)
#   read-only root  overlayroot (the root in a RAM overlay, as raspi-config does it)
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

packages=(python3 python3-venv python3-dev gcc sqlite3 fonts-noto-cjk ca-certificates util-linux)
case "$RB_ROLE" in
    hub) packages+=(mosquitto mosquitto-clients chrony openssl) ;;
    kiosk | kds | counter)
        packages+=(libsdl2-2.0-0 libsdl2-image-2.0-0 libsdl2-mixer-2.0-0 libsdl2-ttf-2.0-0
            libgl1-mesa-dri libegl1 libgles2 libgbm1 libdrm2 systemd-timesyncd fonts-wqy-microhei)
        ;;
esac
if [[ "$RB_READ_ONLY_ROOT" == yes ]]; then
    packages+=(overlayroot)
fi

if ! live; then
    # No dpkg database to ask in a scratch root: the whole list is the plan.
    on_target apt-get install -y --no-install-recommends "${packages[@]}"
    exit 0
fi

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
    unchanged "packages: ${packages[*]}"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
on_target apt-get update
on_target apt-get install -y --no-install-recommends "${missing[@]}"
changed "packages installed: ${missing[*]}"
