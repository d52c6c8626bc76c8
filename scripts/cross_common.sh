# Shared by scripts/cross_*.sh (sourced): installing what a cross check lacks and timing
# its steps.

# `step LABEL NAME COMMAND...`: runs COMMAND, printing its name and wall time.
step() {
  local label=$1 name=$2 start=$SECONDS
  shift 2
  echo "== $label: $name"
  "$@"
  echo "== $label: $name took $((SECONDS - start)) s"
}

# `ensure_packages COMMAND:PACKAGE...`: apt-get installs each PACKAGE whose COMMAND is
# missing (COMMAND may also be a file path that must exist).
ensure_packages() {
  local missing=() pair
  for pair in "$@"; do
    local probe=${pair%%:*} package=${pair#*:}
    if [[ $probe == /* ]]; then
      [ -e "$probe" ] || missing+=("$package")
    else
      command -v "$probe" >/dev/null || missing+=("$package")
    fi
  done
  if [ ${#missing[@]} -gt 0 ]; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# `ensure_rust_target TRIPLE`: rustup target add, when not installed yet.
ensure_rust_target() {
  if ! rustup target list --installed | grep -qx "$1"; then
    rustup target add "$1"
  fi
}
