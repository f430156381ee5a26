#!/usr/bin/env bash
# 30-app: the Restobox program in /opt/restobox, a copy of the checkout (the
# code, broker_config/, systemd/, firmware_scripts/, docs/; not the tests), and
# its venv in /opt/restobox/venv (`/opt/restobox/venv/bin/restobox` is what
# the units run; /usr/local/bin/restobox is that command for staff).
#
# The venv has the checkout installed in editable mode, so the program reads
# its broker_config/ and data files from /opt/restobox, and updating the
# checkout (then running this step again) updates the program. Python
# packages are installed again only when pyproject.toml changes.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

app=/opt/restobox
parts=(pyproject.toml README.md restobox kiosk kds broker_config systemd firmware_scripts docs)

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
want="$(sha256sum <"$RB_SOURCE/pyproject.toml" | cut -d' ' -f1)"
stamp="$venv/.restobox-pyproject.sha256"

if ! live; then
    # pip cannot install into a scratch root: record what the Pi runs.
    on_target python3 -m venv "$venv"
    on_target "$venv/bin/pip" install --editable "$app"
    on_target "$venv/bin/python" -m compileall -q "$app/restobox" "$app/kiosk" "$app/kds"
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    on_target python3 -m venv "$venv"
    changed "$venv"
else
    unchanged "$venv"
fi
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    on_target "$venv/bin/pip" install --quiet --editable "$app"
    if ! dry; then printf '%s\n' "$want" >"$stamp"; fi
    changed "$venv: Python packages of pyproject.toml"
else
    unchanged "$venv: Python packages of pyproject.toml"
fi
# The services run as restobox and cannot write __pycache__ in /opt/restobox:
# compile once here, or every start compiles everything again.
if [[ "$copied" -gt 0 ]]; then
    on_target "$venv/bin/python" -m compileall -q "$app/restobox" "$app/kiosk" "$app/kds"
fi
