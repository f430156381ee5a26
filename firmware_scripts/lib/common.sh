# shellcheck shell=bash
# Helpers shared by the provisioning steps, the first-boot script and
# read-only-root. Sourced, never run.
#
# Every change goes through a helper that looks first and touches the target
# only when it differs (content, mode, owner, link target), and tallies each
# item as changed or unchanged, so a second run reports 0 changes.
#
# Environment (exported by ./provision, set by the other entry points):
#   RB_ROOT      "" for this machine, else the directory to provision
#                (a scratch root for tests, no trailing slash)
#   RB_DRY_RUN   1: say what would change and change nothing at all
#   RB_TALLY     file collecting one line per item: changed, unchanged, plan
#   RB_PROG      name used in messages
set -euo pipefail
umask 022
export LC_ALL=C

: "${RB_ROOT:=}"
: "${RB_DRY_RUN:=0}"
: "${RB_TALLY:=/dev/null}"
: "${RB_PROG:=restobox-provision}"
: "${RB_QUIET:=0}"

# Device and station names, as restobox-broker-user and restobox.config accept them.
# shellcheck disable=SC2034  # used by the scripts that source this file
readonly RB_NAME_RE='^[a-z0-9][a-z0-9-]{0,31}$'

say() { printf '%s\n' "$*"; }
warn() { printf '%s: warning: %s\n' "$RB_PROG" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$RB_PROG" "$*" >&2
    exit 1
}

# The path PATH of the target system.
R() { printf '%s%s' "$RB_ROOT" "$1"; }
live() { [[ -z "$RB_ROOT" ]]; }
dry() { [[ "$RB_DRY_RUN" == 1 ]]; }

_tally() { printf '%s\t%s\n' "$1" "$2" >>"$RB_TALLY"; }

changed() {
    _tally changed "$1"
    [[ "$RB_QUIET" == 1 ]] && return 0
    if dry; then say "  would change  $1"; else say "  changed       $1"; fi
}

unchanged() { _tally unchanged "$1"; }

# Temporary files of this process, removed whatever happens.
_rb_tmp=()
_rb_cleanup() {
    if [[ ${#_rb_tmp[@]} -gt 0 ]]; then
        rm -f -- "${_rb_tmp[@]}"
    fi
}
trap _rb_cleanup EXIT

# --- users and owners of the target ------------------------------------------

# uid of user $1 in the target's /etc/passwd; nothing if there is none.
uid_of() {
    if [[ "$1" == root ]]; then echo 0; return 0; fi
    [[ -f "$(R /etc/passwd)" ]] || return 0
    awk -F: -v n="$1" '$1 == n { print $3; exit }' "$(R /etc/passwd)"
}

gid_of() {
    if [[ "$1" == root ]]; then echo 0; return 0; fi
    [[ -f "$(R /etc/group)" ]] || return 0
    awk -F: -v n="$1" '$1 == n { print $3; exit }' "$(R /etc/group)"
}

# "user:group" -> "uid:gid" of the target (not of the machine running this).
# Returns 1 if either is unknown there (possible only in a dry run, before
# the user exists).
owner_ids() {
    local u g
    u="$(uid_of "${1%%:*}")"
    g="$(gid_of "${1##*:}")"
    [[ -n "$u" && -n "$g" ]] || return 1
    printf '%s:%s' "$u" "$g"
}

# _ids_for OWNER: sets RB_IDS to uid:gid ("" for OWNER -, or, in a dry run,
# for an owner the target does not have yet). Looked up once per owner.
declare -gA _rb_ids=()
_ids_for() {
    RB_IDS=""
    if [[ "$1" == - ]]; then return 0; fi
    if [[ -n "${_rb_ids[$1]:-}" ]]; then
        RB_IDS="${_rb_ids[$1]}"
    elif RB_IDS="$(owner_ids "$1")"; then
        _rb_ids["$1"]="$RB_IDS"
    elif ! dry; then
        die "no user or group '$1' in $(R /etc/passwd) / $(R /etc/group)"
    fi
}

# Does PATH have MODE (octal, or - for any) and IDS (uid:gid, or empty for any)?
_meta_ok() {
    local path="$1" mode="$2" ids="$3"
    if [[ "$mode" != - ]] && (($((8#$(stat -c %a -- "$path"))) != $((8#$mode)))); then
        return 1
    fi
    if [[ -n "$ids" && "$(stat -c %u:%g -- "$path")" != "$ids" ]]; then
        return 1
    fi
    return 0
}

_set_meta() {
    local path="$1" mode="$2" ids="$3"
    if [[ "$mode" != - ]]; then chmod "$mode" -- "$path"; fi
    if [[ -n "$ids" ]]; then chown -h "$ids" -- "$path"; fi
}

# --- files ------------------------------------------------------------------

# write_file PATH MODE OWNER < content
# Writes the content read from stdin to PATH of the target, atomically (a
# reader never sees half a file), only if content, mode or owner differ.
# MODE - keeps the mode (files on the FAT boot partition have none of their
# own); OWNER - keeps the owner.
write_file() {
    local dest="$1" mode="$2" owner="$3" path ids tmp
    path="$RB_ROOT$dest"
    _ids_for "$owner"
    ids="$RB_IDS"
    if dry; then
        tmp="$(mktemp)"
    else
        [[ -d "${path%/*}" ]] || mkdir -p -- "${path%/*}"
        tmp="$(mktemp "${path%/*}/.restobox.XXXXXX")"
    fi
    _rb_tmp+=("$tmp")
    cat >"$tmp"
    if [[ -f "$path" && ! -L "$path" ]] && cmp -s -- "$tmp" "$path"; then
        rm -f -- "$tmp"
        if _meta_ok "$path" "$mode" "$ids"; then
            unchanged "$dest"
        else
            if ! dry; then _set_meta "$path" "$mode" "$ids"; fi
            changed "$dest (mode or owner)"
        fi
        return 0
    fi
    if dry; then
        rm -f -- "$tmp"
        changed "$dest"
        return 0
    fi
    if [[ "$mode" != - ]]; then
        chmod "$mode" -- "$tmp"
    elif [[ -e "$path" ]]; then
        chmod --reference="$path" -- "$tmp" 2>/dev/null || true
    else
        chmod 644 -- "$tmp" 2>/dev/null || true
    fi
    if [[ -n "$ids" ]]; then chown "$ids" -- "$tmp"; fi
    if [[ -d "$path" && ! -L "$path" ]]; then die "$path is a directory, not a file"; fi
    mv -f -- "$tmp" "$path"
    changed "$dest"
}

# write_new_file PATH MODE OWNER < content: like write_file, but a file that
# exists is left as it is (configs that are the store manager's to edit).
write_new_file() {
    if [[ -e "$(R "$1")" ]]; then
        cat >/dev/null
        unchanged "$1"
        return 0
    fi
    write_file "$@"
}

# copy_file SRC PATH MODE OWNER: SRC is a file of this machine.
copy_file() {
    write_file "$2" "$3" "$4" <"$1"
}

# ensure_dir PATH MODE OWNER
ensure_dir() {
    local dest="$1" mode="$2" owner="$3" path ids
    path="$RB_ROOT$dest"
    _ids_for "$owner"
    ids="$RB_IDS"
    if [[ -d "$path" && ! -L "$path" ]]; then
        if _meta_ok "$path" "$mode" "$ids"; then
            unchanged "$dest/"
            return 0
        fi
        if ! dry; then _set_meta "$path" "$mode" "$ids"; fi
        changed "$dest/ (mode or owner)"
        return 0
    fi
    if [[ -e "$path" || -L "$path" ]]; then die "$path exists and is not a directory"; fi
    if ! dry; then
        mkdir -p -- "$path"
        _set_meta "$path" "$mode" "$ids"
    fi
    changed "$dest/"
}

# ensure_symlink PATH TARGET: TARGET is as the target system sees it
# (/etc/systemd/system/x.service, /dev/null), never prefixed by the root.
ensure_symlink() {
    local dest="$1" target="$2" path
    path="$(R "$dest")"
    if [[ -L "$path" && "$(readlink -- "$path")" == "$target" ]]; then
        unchanged "$dest -> $target"
        return 0
    fi
    if [[ -d "$path" && ! -L "$path" ]]; then die "$path is a directory, not a link"; fi
    if ! dry; then
        mkdir -p -- "$(dirname -- "$path")"
        ln -sfn -- "$target" "$path"
    fi
    changed "$dest -> $target"
}

# remove_path PATH: a file or link that should not be there.
remove_path() {
    local dest="$1" path
    path="$(R "$dest")"
    if [[ -e "$path" || -L "$path" ]]; then
        if ! dry; then rm -f -- "$path"; fi
        changed "$dest (removed)"
    fi
}

# --- commands ----------------------------------------------------------------

show_cmd() {
    local out="" a
    for a in "$@"; do out+="${out:+ }$(printf '%q' "$a")"; done
    printf '%s' "$out"
}

# run CMD...: a command that works on any root (its arguments name the
# root's paths): printed in a dry run, else run.
run() {
    if dry; then
        say "  would run     $(show_cmd "$@")"
        return 0
    fi
    "$@"
}

# on_target CMD...: a command that acts on the running system (apt-get,
# pip, systemctl, udevadm). It cannot act on a scratch root: there it is
# recorded in the plan (the manifest ./provision writes under the root)
# and not run.
on_target() {
    if ! live; then
        _tally plan "$(show_cmd "$@")"
        if dry; then
            say "  would plan    $(show_cmd "$@")"
        else
            say "  not run here  $(show_cmd "$@")  (scratch root: recorded in the manifest)"
        fi
        return 0
    fi
    if dry; then
        say "  would run     $(show_cmd "$@")"
        return 0
    fi
    say "  running       $(show_cmd "$@")"
    "$@"
}

# --- systemd -----------------------------------------------------------------

# enable_unit NAME [FILE]: what `systemctl enable` does for a unit installed
# in /etc/systemd/system: a link in each WantedBy= target's .wants directory.
# Works the same on a scratch root. [Install] is read from FILE if given (the
# unit being installed in this run, which a dry run has not installed).
enable_unit() {
    local unit="$1" file="${2:-}" target
    [[ -n "$file" ]] || file="$(R "/etc/systemd/system/$unit")"
    [[ -f "$file" ]] || die "cannot enable $unit: /etc/systemd/system/$unit is not installed"
    local found=false
    while read -r target; do
        [[ -n "$target" ]] || continue
        found=true
        ensure_symlink "/etc/systemd/system/$target.wants/$unit" "/etc/systemd/system/$unit"
    done < <(awk -F= '
        /^\[/ { install = ($0 == "[Install]") }
        install && $1 ~ /^[ \t]*WantedBy[ \t]*$/ {
            n = split($2, t, /[ \t]+/)
            for (i = 1; i <= n; i++) if (t[i] != "") print t[i]
        }' "$file")
    [[ "$found" == true ]] || die "$unit has no WantedBy= in [Install]: nothing to enable it in"
}

# mask_unit NAME: never started, whatever enables it (a link to /dev/null).
mask_unit() {
    ensure_symlink "/etc/systemd/system/$1" /dev/null
}

# --- KEY=VALUE files -----------------------------------------------------------

# read_kv FILE ALLOWED...: reads shell-style KEY=VALUE lines into the
# associative array KV without running anything from the file (it may come
# from a FAT partition anyone can write). Blank lines and # comments are
# skipped, one pair of quotes around a value is removed, CRLF line ends are
# accepted. Unknown keys and malformed lines are errors: each is appended to
# the array KV_ERRORS as a sentence.
declare -gA KV=()
declare -ga KV_ERRORS=()
read_kv() {
    local file="$1" line key value n=0
    shift
    local allowed=" $* "
    KV=()
    KV_ERRORS=()
    while IFS= read -r line || [[ -n "$line" ]]; do
        n=$((n + 1))
        line="${line%$'\r'}"
        [[ "$line" =~ ^[[:space:]]*(#.*)?$ ]] && continue
        if [[ ! "$line" =~ ^[[:space:]]*([A-Z_][A-Z0-9_]*)=(.*)$ ]]; then
            KV_ERRORS+=("line $n is not KEY=VALUE: '$line'")
            continue
        fi
        key="${BASH_REMATCH[1]}"
        value="${BASH_REMATCH[2]}"
        value="${value%"${value##*[![:space:]]}"}"
        if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then
            value="${BASH_REMATCH[1]}"
        fi
        if [[ "$allowed" != *" $key "* ]]; then
            KV_ERRORS+=("line $n: unknown key $key (known: $*)")
            continue
        fi
        if [[ -n "${KV[$key]+set}" ]]; then
            KV_ERRORS+=("line $n: $key is given twice")
            continue
        fi
        KV["$key"]="$value"
    done <"$file"
}

# --- the kernel command line ---------------------------------------------------

readonly RB_CMDLINE=/boot/firmware/cmdline.txt

# cmdline_edit OP...: edits the single line of cmdline.txt; each OP is
# "set KEY=VALUE" (replace KEY's value, or append) or "del KEY".
# Returns 1 (after a warning) when the card has no cmdline.txt.
cmdline_edit() {
    local path line op token key out=() done_keys=" "
    path="$(R "$RB_CMDLINE")"
    if [[ ! -f "$path" ]]; then
        warn "no $RB_CMDLINE here (not a Raspberry Pi OS bookworm card?): kernel settings not applied"
        return 1
    fi
    line="$(head -n 1 -- "$path")"
    line="${line%$'\r'}"
    local -a ops=("$@") tokens=()
    read -r -a tokens <<<"$line"
    for token in "${tokens[@]}"; do
        key="${token%%=*}"
        local keep=true
        for op in "${ops[@]}"; do
            case "$op" in
                "set $key="*)
                    if [[ "$done_keys" != *" $key "* ]]; then out+=("${op#set }"); done_keys+="$key "; fi
                    keep=false
                    ;;
                "del $key") keep=false ;;
            esac
        done
        if [[ "$keep" == true ]]; then out+=("$token"); fi
    done
    for op in "${ops[@]}"; do
        if [[ "$op" == set\ * ]]; then
            key="${op#set }"
            key="${key%%=*}"
            if [[ "$done_keys" != *" $key "* ]]; then out+=("${op#set }"); done_keys+="$key "; fi
        fi
    done
    write_file "$RB_CMDLINE" - - <<<"${out[*]}"
}

# cmdline_has KEY: true if the card's cmdline.txt sets KEY.
cmdline_has() {
    local path
    path="$(R "$RB_CMDLINE")"
    [[ -f "$path" ]] && tr ' ' '\n' <"$path" | grep -q "^$1\(=\|$\)"
}

# --- this card's settings ------------------------------------------------------

readonly RB_FIRMWARE_CONF=/etc/restobox/firmware.conf
readonly RB_FIRMWARE_KEYS="ROLE ROTATION DATA_PARTITION READ_ONLY_ROOT"

# load_firmware_conf: the settings ./provision recorded, into KV; 1 if none.
load_firmware_conf() {
    local file
    file="$(R "$RB_FIRMWARE_CONF")"
    [[ -f "$file" ]] || return 1
    # shellcheck disable=SC2086  # the key list is split on purpose
    read_kv "$file" $RB_FIRMWARE_KEYS
    if [[ ${#KV_ERRORS[@]} -gt 0 ]]; then
        die "$RB_FIRMWARE_CONF: ${KV_ERRORS[0]}"
    fi
}

# The units each role runs; restobox.target groups them.
role_units() {
    case "$1" in
        hub) echo restobox-broker.service restobox-hub.service restobox-printing.service restobox-sync.service restobox-web.service ;;
        kiosk) echo restobox-kiosk.service ;;
        kds) echo restobox-kds.service ;;
        counter) echo restobox-counter.service ;;
        *) die "unknown role '$1'" ;;
    esac
}

# The extras of pyproject.toml each role installs: a screen's Pi carries no
# hub, printing or charts, the hub no Kivy. The counter prints through the
# printing service (receipts, the drawer pulse), so it is a screen too.
role_extras() {
    case "$1" in
        hub) echo hub,printing ;;
        kiosk | kds | counter) echo screens ;;
        *) die "unknown role '$1'" ;;
    esac
}

# --- the program ---------------------------------------------------------------

# The exact versions of every Python package a Pi installs.
readonly RB_CONSTRAINTS=firmware_scripts/files/constraints.txt

# The version in APP's pyproject.toml (the wheel's file name), or in the
# source's while APP is not copied yet (a dry run).
program_version() {
    local file
    file="$(R "$1")/pyproject.toml"
    [[ -f "$file" ]] || file="$RB_SOURCE/pyproject.toml"
    awk -F'"' '/^\[/ { p = ($0 == "[project]") } p && $1 ~ /^version *= *$/ { print $2; exit }' "$file"
}

# The wheel build_program makes from APP.
program_wheel() {
    printf '%s/dist/restobox-%s-py3-none-any.whl' "$1" "$(program_version "$1")"
}

# build_program VENV APP: the program as a wheel in APP/dist, built by VENV's
# pip. A Pi never runs the copy in APP: it runs what the wheel carries (code,
# .kv files, broker_config, data), as a test installs it. build/ goes first:
# setuptools would put in the wheel what it kept there from an earlier build.
build_program() {
    local venv="$1" app="$2"
    on_target rm -rf -- "$app/build" "$app/dist"
    on_target "$venv/bin/pip" wheel --quiet --no-deps --wheel-dir "$app/dist" "$app"
    on_target rm -rf -- "$app/build" "$app/restobox.egg-info"
}

# make_venv VENV: Debian's Python 3 in a venv of its own, unless there is one.
make_venv() {
    if [[ ! -x "$(R "$1/bin/python")" ]]; then
        on_target python3 -m venv "$1"
    fi
}

# install_program VENV APP ROLE: the wheel of APP into VENV with ROLE's
# extras, every package at its version in APP's constraints.
# tests/test_install_wheel.py installs each role with make_venv and this.
install_program() {
    local venv="$1" app="$2" role="$3" wheel extras
    wheel="$(program_wheel "$app")"
    extras="$(role_extras "$role")"
    on_target "$venv/bin/pip" install --quiet --constraint "$app/$RB_CONSTRAINTS" "${wheel}[$extras]"
    # The same version number with other code: pip would keep the old files.
    on_target "$venv/bin/pip" install --quiet --no-deps --force-reinstall "$wheel"
}

# The summary line of a run, from the tally.
summary() {
    local what="$1" ch un pl
    ch="$(grep -c '^changed' "$RB_TALLY" || true)"
    un="$(grep -c '^unchanged' "$RB_TALLY" || true)"
    pl="$(grep -c '^plan' "$RB_TALLY" || true)"
    if dry; then
        say "$what (dry run, nothing was changed): $ch would change, $un unchanged"
    else
        say "$what: $ch changed, $un unchanged"
    fi
    if [[ "$pl" -gt 0 ]]; then
        say "$pl command(s) that act on a running system were not run in the scratch root $RB_ROOT"
    fi
}

# --- the read-only root ------------------------------------------------------

# overlayroot (Debian's package, which raspi-config uses too) mounts the root
# read-only under a RAM overlay. recurse=0 keeps the other mounts out of the
# overlay: /var/lib/restobox on its own partition stays durable.
readonly RB_OVERLAY=overlayroot=tmpfs:recurse=0

data_partition_in_fstab() {
    [[ -f "$(R /etc/fstab)" ]] && awk '$1 !~ /^#/ && $2 == "/var/lib/restobox" { found = 1 } END { exit !found }' "$(R /etc/fstab)"
}

overlay_on() {
    local role=""
    if load_firmware_conf; then role="${KV[ROLE]:-}"; fi
    [[ "$role" != hub ]] ||
        die "the hub keeps a writable root: its broker credentials change whenever a device is added"
    data_partition_in_fstab ||
        die "/var/lib/restobox has no partition of its own in /etc/fstab: with a read-only root its orders and payments would be lost at every restart (provision --data-partition)"
    if live && ! dpkg-query -W -f='${Status}' overlayroot 2>/dev/null | grep -q 'install ok installed'; then
        die "the overlayroot package is not installed (provision --read-only-root installs it)"
    fi
    cmdline_edit "set $RB_OVERLAY" || die "cannot turn the read-only root on without $RB_CMDLINE"
}

overlay_off() {
    cmdline_edit "del overlayroot" || die "cannot change the read-only root without $RB_CMDLINE"
}

# Is the running system's root the overlay now?
overlay_active() {
    live && [[ "$(findmnt -n -o FSTYPE / 2>/dev/null || true)" == overlay ]]
}

# --- the store CA and the broker's certificate (hub) ---------------------------
#
# The broker takes other hosts only over TLS (mosquitto.conf, listener 8883).
# The hub's first boot makes, in /etc/restobox/broker/tls:
#   ca.key      the store CA's private key: signs the broker's certificate
#               (mode 0600, root: no service reads it)
#   ca.crt      the store CA's certificate: `restobox add-device` hands a copy
#               to every device with its credentials; the device trusts
#               only it
#   server.key  the broker's private key (mode 0600, owner mosquitto, the
#               user the broker runs as)
#   server.crt  the broker's certificate, signed by the CA, naming the hub
#               (its host name, NAME.local, localhost, 127.0.0.1, its IPv4
#               addresses and RB_TLS_NAMES)
# The CA is made once and kept: replacing it means enrolling every device
# again (docs/operations.md, "TLS on the store network"). The broker's
# certificate is made again when it is missing, not signed by the CA, does
# not match its key, expires within RB_TLS_RENEW_DAYS or lacks a name the
# hub has now; its names only grow (at boot the network may not be up yet).
readonly RB_TLS_DIR=/etc/restobox/broker/tls
readonly RB_TLS_CA_DAYS=3650
readonly RB_TLS_SERVER_DAYS=825
readonly RB_TLS_RENEW_DAYS=30

# The hub's host name, as the card has it.
_tls_hostname() {
    local h=""
    if [[ -f "$(R /etc/hostname)" ]]; then h="$(head -n 1 "$(R /etc/hostname)" | tr -d '[:space:]')"; fi
    if [[ -z "$h" ]] && live; then h="$(hostname 2>/dev/null || true)"; fi
    printf '%s' "${h:-raspberrypi}"
}

# The names the broker's certificate must have now, one a line, as
# subjectAltName entries (DNS:... or IP:...). RB_TLS_NAMES (space separated)
# adds more: another name or address devices reach the hub by.
tls_wanted_names() {
    local h a
    h="$(_tls_hostname)"
    printf 'DNS:%s\nDNS:%s.local\nDNS:localhost\nIP:127.0.0.1\n' "$h" "$h"
    if live; then
        for a in $(hostname -I 2>/dev/null || true); do
            [[ "$a" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] && printf 'IP:%s\n' "$a"
        done
    fi
    for a in ${RB_TLS_NAMES:-}; do
        if [[ "$a" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]]; then printf 'IP:%s\n' "$a"; else printf 'DNS:%s\n' "$a"; fi
    done
}

# The subjectAltName entries of certificate FILE, one a line (DNS:..., IP:...).
tls_cert_names() {
    openssl x509 -noout -ext subjectAltName -in "$1" 2>/dev/null |
        tail -n +2 | tr ',' '\n' | sed -e 's/^ *//' -e 's/^IP Address:/IP:/' | grep -E '^(DNS|IP):' || true
}

# _tls_meta PATH MODE OWNER: a file made here gets its mode and owner.
_tls_meta() {
    local dest="$1" mode="$2" path
    path="$(R "$dest")"
    _ids_for "$3"
    if _meta_ok "$path" "$mode" "$RB_IDS"; then
        unchanged "$dest"
    else
        if ! dry; then _set_meta "$path" "$mode" "$RB_IDS"; fi
        changed "$dest (mode or owner)"
    fi
}

# _tls_openssl CMD...: openssl, its complaint kept for the error message.
_tls_openssl() {
    local out
    if ! out="$(openssl "$@" 2>&1)"; then
        die "openssl $1 failed: ${out//$'\n'/ }"
    fi
}

# Is the broker's certificate in DIR good for the names in WANTED (a list)?
_tls_server_ok() {
    local d="$1" wanted="$2" have n
    [[ -f "$d/server.crt" && -f "$d/server.key" ]] || return 1
    openssl verify -CAfile "$d/ca.crt" "$d/server.crt" >/dev/null 2>&1 || return 1
    openssl x509 -noout -checkend $((RB_TLS_RENEW_DAYS * 86400)) -in "$d/server.crt" >/dev/null 2>&1 || return 1
    [[ "$(openssl x509 -noout -pubkey -in "$d/server.crt" 2>/dev/null)" == \
        "$(openssl pkey -pubout -in "$d/server.key" 2>/dev/null)" ]] || return 1
    have="$(tls_cert_names "$d/server.crt")"
    while IFS= read -r n; do
        [[ -z "$n" ]] || grep -qxF -- "$n" <<<"$have" || return 1
    done <<<"$wanted"
}

# ensure_store_tls: the store CA (once) and the broker's certificate (when
# needed) in RB_TLS_DIR. Sets RB_TLS_SERVER_CHANGED=1 when the broker's
# certificate was made again (a running broker must restart to use it).
# shellcheck disable=SC2034  # RB_TLS_SERVER_CHANGED is read by the caller
ensure_store_tls() {
    local dir="$RB_TLS_DIR" d key_owner=root:root owner=root:root wanted names cn tmp_key tmp_crt tmp_csr cnf
    RB_TLS_SERVER_CHANGED=0
    d="$(R "$dir")"
    command -v openssl >/dev/null || die "openssl is missing (apt-get install openssl): the broker's TLS needs it"
    if [[ -n "$(uid_of mosquitto)" && -n "$(gid_of mosquitto)" ]]; then key_owner=mosquitto:mosquitto; fi
    # A scratch root made by a user who is not root (a test) keeps that user's files.
    if ! live && ((EUID != 0)); then owner=- key_owner=-; fi
    ensure_dir "$dir" 0755 "$owner"
    cn="$(_tls_hostname)"

    if [[ -f "$d/ca.crt" && -f "$d/ca.key" ]]; then
        _tls_meta "$dir/ca.key" 0600 "$owner"
        _tls_meta "$dir/ca.crt" 0644 "$owner"
    elif [[ -f "$d/ca.crt" || -f "$d/ca.key" ]]; then
        die "$dir has only half of the store CA (ca.crt and ca.key go together): put the missing file back, or move both away to make a new CA and enroll every device again (docs/operations.md, \"TLS on the store network\")"
    elif dry; then
        changed "$dir/ca.key, $dir/ca.crt (a new store CA)"
    else
        tmp_key="$(mktemp "$d/.restobox.XXXXXX")" tmp_crt="$(mktemp "$d/.restobox.XXXXXX")"
        cnf="$(mktemp)"
        _rb_tmp+=("$tmp_key" "$tmp_crt" "$cnf")
        cat >"$cnf" <<'CNF'
[req]
distinguished_name = dn
x509_extensions = ca
prompt = no
[dn]
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
CNF
        chmod 600 "$tmp_key"
        _tls_openssl req -x509 -new -config "$cnf" -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
            -days "$RB_TLS_CA_DAYS" -subj "/O=Restobox/CN=Restobox store CA $cn $(date -u +%Y-%m-%d)" \
            -keyout "$tmp_key" -out "$tmp_crt"
        _ids_for "$owner"
        _set_meta "$tmp_key" 0600 "$RB_IDS"
        _set_meta "$tmp_crt" 0644 "$RB_IDS"
        mv -f -- "$tmp_key" "$d/ca.key"
        mv -f -- "$tmp_crt" "$d/ca.crt"
        changed "$dir/ca.key, $dir/ca.crt (a new store CA)"
    fi

    wanted="$(tls_wanted_names | awk '!seen[$0]++')"
    if [[ -f "$d/ca.crt" ]] && _tls_server_ok "$d" "$wanted"; then
        _tls_meta "$dir/server.key" 0600 "$key_owner"
        _tls_meta "$dir/server.crt" 0644 "$owner"
        return 0
    fi
    RB_TLS_SERVER_CHANGED=1
    if dry; then
        changed "$dir/server.key, $dir/server.crt (the broker's certificate)"
        return 0
    fi
    # The names only grow: those of the old certificate stay.
    if [[ -f "$d/server.crt" ]]; then wanted="$(printf '%s\n%s\n' "$wanted" "$(tls_cert_names "$d/server.crt")")"; fi
    names="$(grep -v '^$' <<<"$wanted" | awk '!seen[$0]++' | paste -sd, -)"
    tmp_key="$(mktemp "$d/.restobox.XXXXXX")" tmp_crt="$(mktemp "$d/.restobox.XXXXXX")"
    tmp_csr="$(mktemp)" cnf="$(mktemp)"
    _rb_tmp+=("$tmp_key" "$tmp_crt" "$tmp_csr" "$cnf")
    cat >"$cnf" <<CNF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = $names
CNF
    chmod 600 "$tmp_key"
    _tls_openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=Restobox/CN=$cn" \
        -keyout "$tmp_key" -out "$tmp_csr"
    _tls_openssl x509 -req -in "$tmp_csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -sha256 \
        -set_serial "0x$(openssl rand -hex 16)" -days "$RB_TLS_SERVER_DAYS" -extfile "$cnf" -out "$tmp_crt"
    _ids_for "$key_owner"
    _set_meta "$tmp_key" 0600 "$RB_IDS"
    _ids_for "$owner"
    _set_meta "$tmp_crt" 0644 "$RB_IDS"
    mv -f -- "$tmp_key" "$d/server.key"
    mv -f -- "$tmp_crt" "$d/server.crt"
    changed "$dir/server.key, $dir/server.crt (the broker's certificate: ${names//,/, })"
}
