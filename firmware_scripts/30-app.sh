#!/usr/bin/env bash
# 30-app: the Restobox program in /opt/restobox, a copy of the checkout (the
# code, systemd/, firmware_scripts/, docs/; not the tests), and its venv in
# /opt/restobox/venv (`/opt/restobox/venv/bin/restobox` is what the units
# run; /usr/local/bin/restobox is that command for staff).
#
# The venv runs a wheel built from the copy, never the copy itself: what a
# Pi runs is exactly what the wheel carries (the code, the .kv files,
# restobox/broker_config/, the data files), with the extras of the card's role
# (lib/common.sh role_extras: a kitchen screen gets no hub, the hub no Kivy)
# at the versions of firmware_scripts/files/constraints.txt. Updating the
# checkout and running this step again builds and installs the wheel again;
# nothing is installed when neither the program, the constraints nor the
# role changed.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

app=/opt/restobox
parts=(pyproject.toml README.md restobox kiosk kds counter systemd firmware_scripts docs)

source_files() {
    local p existing=()
    for p in "${parts[@]}"; do
        if [[ -e "$RB_SOURCE/$p" ]]; then existing+=("$p"); fi
    done
    (cd "$RB_SOURCE" && find "${existing[@]}" \
        \( -name __pycache__ -o -name '*.egg-info' -o -name .pytest_cache \) -prune -o \
        -type f ! -name '*.pyc' ! -name '*.db' ! -name '*.db-wal' ! -name '*.db-shm' -print) | sort
}

installed_files() {
    local p existing=()
    for p in "${parts[@]}"; do
        if [[ -e "$(R "$app")/$p" ]]; then existing+=("$p"); fi
    done
    [[ ${#existing[@]} -gt 0 ]] || return 0
    (cd "$(R "$app")" && find "${existing[@]}" \
        \( -name __pycache__ -o -name '*.egg-info' \) -prune -o -type f ! -name '*.pyc' -print) | sort
}

ensure_dir "$app" 0755 root:root

copied=0
if [[ "$(realpath -m "$(R "$app")")" == "$RB_SOURCE" ]]; then
    unchanged "$app (provisioning from the installed copy itself)"
else
    before="$(grep -c '^changed' "$RB_TALLY" || true)"
    list="$(source_files)"
    declare -A in_source=()
    RB_QUIET=1
    while IFS= read -r f; do
        [[ -n "$f" ]] || continue
        in_source["$f"]=1
        mode=644
        if [[ -x "$RB_SOURCE/$f" ]]; then mode=755; fi
        dest="$(R "$app/$f")"
        # The common case, an unchanged file, costs two processes, not eight.
        if [[ -f "$dest" && ! -L "$dest" ]] && cmp -s -- "$RB_SOURCE/$f" "$dest" &&
            [[ "$(stat -c %a:%u:%g -- "$dest")" == "$mode:0:0" ]]; then
            unchanged "$app/$f"
            continue
        fi
        if [[ ! -e "$dest" && ! -L "$dest" ]]; then
            # A new file: one process (nothing can read half of it yet).
            if ! dry; then install -D -m "$mode" -o 0 -g 0 -- "$RB_SOURCE/$f" "$dest"; fi
            changed "$app/$f"
            continue
        fi
        copy_file "$RB_SOURCE/$f" "$app/$f" "0$mode" root:root
    done <<<"$list"
    # Files the checkout no longer has (a module moved, a unit renamed).
    while IFS= read -r f; do
        [[ -n "$f" ]] || continue
        if [[ -z "${in_source[$f]:-}" ]]; then remove_path "$app/$f"; fi
    done < <(installed_files)
    RB_QUIET=0
    after="$(grep -c '^changed' "$RB_TALLY" || true)"
    copied=$((after - before))
    if [[ "$copied" -gt 0 ]]; then
        if dry; then say "  would change  $app: $copied file(s)"; else say "  changed       $app: $copied file(s)"; fi
    fi
fi

# Staff type `restobox status`, not the venv's path.
ensure_symlink /usr/local/bin/restobox "$app/venv/bin/restobox"

# --- the venv ---------------------------------------------------------------

venv="$app/venv"
extras="$(role_extras "$RB_ROLE")"
stamp="$venv/.restobox-program.sha256"

# What the venv holds depends on: the program's files, the pinned versions
# and the role.
program_files() {
    source_files | grep -E "^(pyproject\.toml|README\.md|restobox/|kiosk/|kds/|counter/|${RB_CONSTRAINTS//./\\.}$)"
}

if ! live; then
    # pip cannot install into a scratch root: record what the Pi runs.
    make_venv "$venv"
    build_program "$venv" "$app"
    install_program "$venv" "$app" "$RB_ROLE"
    exit 0
fi

want="$( {
    printf 'extras %s\n' "$extras"
    program_files | (cd "$RB_SOURCE" && xargs -d '\n' sha256sum --)
} | sha256sum | cut -d' ' -f1)"

if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    unchanged "$venv: restobox[$extras]"
else
    # The wheel is built with the venv's own pip: the venv comes first.
    make_venv "$venv"
    build_program "$venv" "$app"
    install_program "$venv" "$app" "$RB_ROLE"
    if ! dry; then printf '%s\n' "$want" >"$stamp"; fi
    changed "$venv: restobox[$extras] from a wheel of $app, versions of $RB_CONSTRAINTS"
fi
