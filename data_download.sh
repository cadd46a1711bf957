#!/usr/bin/env bash
# data_download.sh: fetch the public CTS datasets and lay them out as ctslib.data expects.
#
#   ./data_download.sh --dest data                     # DDTI crops + LGG (needs Kaggle credentials)
#   ./data_download.sh --dest data --datasets brats    # BraTS 2021 (needs Synapse registration)
#   ./data_download.sh --dest data --base-url file:///srv/mirror   # from a mirror with SHA256SUMS
#
# Result (the layout of the project's full data sets; point CTS_DATA_ROOT at DEST to use them):
#   DEST/ddti/pairs.csv + images/ + masks/       -> open_dataset("ddti:DEST/ddti")
#   DEST/lgg/slices.csv + TCGA_*/NNN_{image,mask}.png -> open_dataset("lgg:DEST/lgg")
#   DEST/brats2021/BraTS2021_XXXXX/*.nii.gz       -> open_dataset("brats:DEST/brats2021")
#
# Safety: every download goes to DEST/.cts-download, is checked (SHA256SUMS of a mirror, or
# DDTI_SHA256 / LGG_SHA256 / BRATS_SHA256 when set), extracted and converted in a temporary
# folder, verified, and only then moved into place in one rename. A dataset already present
# (DEST/NAME/.complete) is skipped, so reruns are cheap and idempotent. On any failure the
# temporary files and the failed download are removed (with --keep-partial an interrupted
# download is kept in DEST/.cts-download and resumed by the next run).
# Needs: bash, curl, sha256sum, tar, unzip, python3 with numpy + Pillow (for the conversion).
set -Eeuo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONVERT="$SCRIPT_DIR/ctslib/data/convert.py"
PYTHON="${CTS_PYTHON:-$(command -v python3 || command -v python || echo python3)}"
DEST="${CTS_DATA_ROOT:-data}"
BASE_URL="${CTS_DATA_BASE_URL:-}"
DATASETS="ddti,lgg"
DDTI_SOURCE="github"
KEEP_PARTIAL=0
FORCE=0
SEED=0

# Public sources (upstream publishes no checksums: set DDTI_SHA256 / LGG_SHA256 to pin them).
DDTI_GITHUB_URL="${DDTI_GITHUB_URL:-https://github.com/xuao575/DDTI_preprocessing/archive/c3b57e52423e8e9b13c00d105c13888875bfa904.zip}"
DDTI_KAGGLE="dasmehdixtr/ddti-thyroid-ultrasound-images"
LGG_KAGGLE="mateuszbuda/lgg-mri-segmentation"
BRATS_SYNAPSE_ID="${BRATS_SYNAPSE_ID:-syn25829067}"

usage() {
  cat <<EOF
Usage: $0 [options]
  --dest DIR          where to lay out the data (default: \$CTS_DATA_ROOT or ./data, which git ignores
                      apart from the committed data/sample)
  --datasets LIST     comma list of ddti, lgg, brats (default: ddti,lgg)
  --base-url URL      fetch NAME.tar.gz / NAME.zip from a mirror (http(s):// or file://) that
                      holds a SHA256SUMS file, instead of the public sources (env CTS_DATA_BASE_URL)
  --ddti-source SRC   github (public DDTI crops, no login; default) or kaggle (raw XML + JPEG,
                      cropped here; needs Kaggle credentials)
  --seed N            seed of the patient/frame-level split written by the conversion (default 0)
  --keep-partial      keep an interrupted download in DEST/.cts-download to resume it next run
  --force             download again even if DEST/NAME/.complete exists
  -h, --help          this help

Credentials:
  LGG (Kaggle $LGG_KAGGLE) and DDTI from Kaggle need a Kaggle account: either the kaggle CLI
  with ~/.kaggle/kaggle.json, or KAGGLE_USERNAME and KAGGLE_KEY in the environment (curl is used).
  BraTS 2021 needs a Synapse account, registration for the BraTS 2021 challenge and acceptance of
  its data terms (Synapse project syn25829067), then the synapse CLI (pip install synapseclient)
  and SYNAPSE_AUTH_TOKEN (a personal access token). Data terms: see docs/method.md section 8.
EOF
}

die() { echo "data_download.sh: error: $*" >&2; exit 1; }
say() { echo "data_download.sh: $*"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --dest) DEST="${2:?--dest needs a folder}"; shift 2 ;;
    --datasets) DATASETS="${2:?--datasets needs a list}"; shift 2 ;;
    --base-url) BASE_URL="${2:?--base-url needs a URL}"; shift 2 ;;
    --ddti-source) DDTI_SOURCE="${2:?--ddti-source needs github or kaggle}"; shift 2 ;;
    --seed) SEED="${2:?--seed needs a number}"; shift 2 ;;
    --keep-partial) KEEP_PARTIAL=1; shift ;;
    --force) FORCE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done

for tool in curl sha256sum tar unzip; do
  command -v "$tool" >/dev/null || die "'$tool' is required but not installed"
done

mkdir -p "$DEST" || die "cannot create --dest '$DEST'"
DEST="$(cd "$DEST" && pwd)"
STAGE="$DEST/.cts-download"
mkdir -p "$STAGE"
BASE_URL="${BASE_URL%/}"

# Temporary paths of the dataset in progress; removed when its subshell fails or is interrupted.
TMP_PATHS=()
PART_FILE=""
cleanup_dataset() {
  local rc=$? p
  for p in "${TMP_PATHS[@]:-}"; do if [[ -n "$p" && -e "$p" ]]; then rm -rf -- "$p"; fi; done
  if [[ -n "$PART_FILE" && -e "$PART_FILE" && $KEEP_PARTIAL -eq 0 ]]; then rm -f -- "$PART_FILE"; fi
  exit $rc
}
trap 'rmdir "$STAGE" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM

# fetch URL OUT: download with curl into OUT (via OUT.part); a clear message on network failure.
fetch() {
  local url="$1" out="$2" rc=0
  shift 2
  PART_FILE="$out.part"
  local resume=()
  [[ $KEEP_PARTIAL -eq 1 && -s "$PART_FILE" ]] && resume=(-C -)
  [[ $KEEP_PARTIAL -eq 0 ]] && rm -f -- "$PART_FILE"
  local progress=(-sS)
  [[ -t 2 ]] && progress=(--progress-bar)
  curl -fL "${progress[@]}" --retry 2 --connect-timeout 20 ${resume[@]+"${resume[@]}"} "$@" -o "$PART_FILE" "$url" || rc=$?
  if [[ $rc -ne 0 ]]; then
    case $rc in
      6|7|28) echo "data_download.sh: cannot reach ${url%%\?*} (curl exit $rc): no network? Check the connection or use --base-url with a local mirror." >&2 ;;
      22) echo "data_download.sh: the server refused ${url%%\?*} (HTTP error; curl exit 22): missing file, or credentials not accepted." >&2 ;;
      37) echo "data_download.sh: cannot read ${url} (curl exit 37): no such file in the mirror." >&2 ;;
      *) echo "data_download.sh: download of ${url%%\?*} failed (curl exit $rc)." >&2 ;;
    esac
    return 1
  fi
  mv -f -- "$PART_FILE" "$out"
  PART_FILE=""
}

# verify FILE SHA256 (empty expected: print the digest so it can be pinned)
verify() {
  local file="$1" want="$2" got
  got="$(sha256sum "$file" | cut -d' ' -f1)"
  if [[ -z "$want" ]]; then
    say "sha256 of $(basename "$file"): $got (upstream publishes no checksum; pin it with the *_SHA256 variable)"
  elif [[ "$got" != "$want" ]]; then
    rm -f -- "$file"
    echo "data_download.sh: checksum mismatch for $(basename "$file"): expected $want, got $got; the download was deleted." >&2
    return 1
  fi
  echo "$got" >"$file.sha256"
}

# extract ARCHIVE DIR
extract() {
  local archive="$1" dir="$2"
  case "$archive" in
    *.zip) unzip -q "$archive" -d "$dir" ;;
    *.tar.gz|*.tgz|*.tar) tar -xf "$archive" -C "$dir" ;;
    *) echo "data_download.sh: unknown archive type: $archive" >&2; return 1 ;;
  esac || { echo "data_download.sh: cannot extract $(basename "$archive") (corrupt archive?)" >&2; return 1; }
}

# find_layout DIR MARKER: the folder under DIR that holds MARKER (a CSV), if any.
find_layout() {
  local hit
  hit="$(find "$1" -name "$2" -type f -print 2>/dev/null | head -n 1)"
  [[ -n "$hit" ]] && dirname "$hit"
}

# check_layout DIR MARKER: every image and mask listed in the CSV exists.
check_layout() {
  "$PYTHON" -c '
import csv, os, sys
root, name = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(os.path.join(root, name), newline="")))
missing = [r[c] for r in rows for c in ("image", "mask") if not os.path.isfile(os.path.join(root, r[c]))]
if not rows or missing:
    sys.exit(f"layout check failed in {root}/{name}: {len(rows)} rows, {len(missing)} missing files, e.g. {missing[:3]}")
print(f"{len(rows)} pairs")
' "$1" "$2"
}

marker_of() { case "$1" in ddti) echo pairs.csv ;; lgg) echo slices.csv ;; *) echo "" ;; esac; }
folder_of() { case "$1" in brats) echo brats2021 ;; *) echo "$1" ;; esac; }

# mirror_get NAME STAGEDIR: fetch NAME.{tar.gz,zip} listed in the mirror's SHA256SUMS and verify it.
mirror_get() {
  local name="$1" sums="$STAGE/SHA256SUMS" line file want
  fetch "$BASE_URL/SHA256SUMS" "$sums" || return 1
  line="$(grep -E "^[0-9a-f]{64}[[:space:]]+\*?$name\.(tar\.gz|tgz|tar|zip)\$" "$sums" | head -n 1 || true)"
  rm -f -- "$sums"
  [[ -n "$line" ]] || { echo "data_download.sh: the mirror's SHA256SUMS lists no archive for '$name'" >&2; return 1; }
  want="${line%% *}"
  file="$(echo "$line" | awk '{print $2}')"
  file="${file#\*}"
  fetch "$BASE_URL/$file" "$STAGE/$file" || return 1
  verify "$STAGE/$file" "$want" || return 1
  ARCHIVE="$STAGE/$file"
}

kaggle_get() {
  local slug="$1" out="$STAGE/${1##*/}.zip"
  if command -v kaggle >/dev/null && [[ -f "${KAGGLE_CONFIG_DIR:-$HOME/.kaggle}/kaggle.json" || -n "${KAGGLE_KEY:-}" ]]; then
    say "downloading $slug with the kaggle CLI"
    kaggle datasets download -d "$slug" -p "$STAGE" --force >/dev/null || { echo "data_download.sh: kaggle download of $slug failed" >&2; return 1; }
  else
    local user="${KAGGLE_USERNAME:-}" key="${KAGGLE_KEY:-}" cfg="${KAGGLE_CONFIG_DIR:-$HOME/.kaggle}/kaggle.json"
    if [[ ( -z "$user" || -z "$key" ) && -f "$cfg" ]]; then
      user="$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["username"])' "$cfg")"
      key="$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["key"])' "$cfg")"
    fi
    if [[ -z "$user" || -z "$key" ]]; then
      echo "data_download.sh: $slug is on Kaggle, which needs an account: install the kaggle CLI with ~/.kaggle/kaggle.json, or export KAGGLE_USERNAME and KAGGLE_KEY (kaggle.com > Settings > API > Create New Token). Or use --base-url with a mirror." >&2
      return 1
    fi
    say "downloading $slug from the Kaggle API with curl"
    fetch "https://www.kaggle.com/api/v1/datasets/download/$slug" "$out" -u "$user:$key" || return 1
  fi
  verify "$out" "${2:-}" || return 1
  ARCHIVE="$out"
}

brats_get() {
  if ! command -v synapse >/dev/null || [[ -z "${SYNAPSE_AUTH_TOKEN:-}" && ! -f "$HOME/.synapseConfig" ]]; then
    cat >&2 <<EOF
data_download.sh: BraTS 2021 cannot be downloaded anonymously. To get it:
  1. create an account at https://www.synapse.org and register for the RSNA-ASNR-MICCAI BraTS 2021
     challenge (Synapse project syn25829067), accepting its data terms (research use, no redistribution);
  2. pip install synapseclient, create a personal access token and export SYNAPSE_AUTH_TOKEN=...;
  3. rerun: $0 --dest $DEST --datasets brats   (BRATS_SYNAPSE_ID overrides the entity, now $BRATS_SYNAPSE_ID).
Or download RSNA_ASNR_MICCAI_BraTS2021_TrainingData_16July2021.tar yourself and extract it to
$DEST/brats2021 (one BraTS2021_XXXXX folder per case). Cite Baid et al. 2021, Menze et al. 2015, Bakas et al. 2017.
EOF
    return 1
  fi
  local dl="$STAGE/brats-synapse"
  TMP_PATHS+=("$dl")
  mkdir -p "$dl"
  say "downloading BraTS 2021 ($BRATS_SYNAPSE_ID) with the synapse CLI"
  synapse get -r "$BRATS_SYNAPSE_ID" --downloadLocation "$dl" || { echo "data_download.sh: synapse download failed (terms accepted? token valid?)" >&2; return 1; }
  ARCHIVE="$(find "$dl" -type f \( -name '*TrainingData*.tar' -o -name '*TrainingData*.zip' -o -name '*.tar' \) | head -n 1)"
  [[ -n "$ARCHIVE" ]] || { echo "data_download.sh: no training-data archive found in the Synapse download" >&2; return 1; }
  verify "$ARCHIVE" "${BRATS_SHA256:-}" || return 1
}

# install NAME: fetch, check, extract, convert, verify, and move into DEST/FOLDER.
install() {
  local name="$1" folder marker target work layout n
  folder="$(folder_of "$name")"; marker="$(marker_of "$name")"; target="$DEST/$folder"
  if [[ -f "$target/.complete" && $FORCE -eq 0 ]]; then
    say "$name: already in $target (remove it or pass --force to fetch again)"
    return 0
  fi
  ARCHIVE=""
  if [[ -n "$BASE_URL" ]]; then
    mirror_get "$name" || return 1
  else
    case "$name" in
      ddti)
        if [[ "$DDTI_SOURCE" == "kaggle" ]]; then kaggle_get "$DDTI_KAGGLE" "${DDTI_SHA256:-}" || return 1
        else fetch "$DDTI_GITHUB_URL" "$STAGE/ddti-crops.zip" && verify "$STAGE/ddti-crops.zip" "${DDTI_SHA256:-}" || return 1
             ARCHIVE="$STAGE/ddti-crops.zip"; fi ;;
      lgg) kaggle_get "$LGG_KAGGLE" "${LGG_SHA256:-}" || return 1 ;;
      brats) brats_get || return 1 ;;
      *) echo "data_download.sh: unknown dataset '$name' (use ddti, lgg, brats)" >&2; return 1 ;;
    esac
  fi
  TMP_PATHS+=("$ARCHIVE" "$ARCHIVE.sha256")
  work="$(mktemp -d "$STAGE/$name.extract.XXXXXX")"; TMP_PATHS+=("$work")
  extract "$ARCHIVE" "$work" || return 1
  if [[ -n "$marker" ]]; then
    layout="$(find_layout "$work" "$marker" || true)"
    if [[ -z "$layout" ]]; then                     # raw upstream layout: convert it
      layout="$(mktemp -d "$STAGE/$name.layout.XXXXXX")"; TMP_PATHS+=("$layout")
      "$PYTHON" "$CONVERT" "$name" "$work" "$layout" --seed "$SEED" || { echo "data_download.sh: conversion of $name failed" >&2; return 1; }
    fi
    n="$(check_layout "$layout" "$marker")" || return 1
  else                                              # volumes: the folder above the BraTS2021_* cases
    layout="$(find "$work" -type d -name 'BraTS2021_*' -print | head -n 1)"
    [[ -n "$layout" ]] || { echo "data_download.sh: no BraTS2021_* case folders in the archive" >&2; return 1; }
    layout="$(dirname "$layout")"
    n="$(find "$layout" -maxdepth 1 -type d -name 'BraTS2021_*' | wc -l) cases"
  fi
  printf 'source=%s\nsha256=%s\nitems=%s\n' "${BASE_URL:-public}" "$(cat "$ARCHIVE.sha256")" "$n" >"$layout/.complete"
  if [[ -e "$target" ]]; then                       # --force or an incomplete earlier copy
    mv -- "$target" "$work/old-$folder"
  fi
  mv -- "$layout" "$target"
  say "$name: $n laid out in $target"
  rm -rf -- "$work" "$ARCHIVE" "$ARCHIVE.sha256"
  TMP_PATHS=()
}

failed=()
IFS=',' read -r -a names <<<"$DATASETS"
for name in "${names[@]}"; do
  name="${name// /}"
  [[ -z "$name" ]] && continue
  set +e
  ( trap cleanup_dataset EXIT; trap 'exit 130' INT TERM; set -e; install "$name" )
  rc=$?
  set -e
  [[ $rc -eq 0 ]] || failed+=("$name")
  [[ $rc -eq 130 ]] && break
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "data_download.sh: FAILED: ${failed[*]} (nothing partial was left in $DEST; see the messages above)" >&2
  exit 1
fi
say "done: $DEST"
