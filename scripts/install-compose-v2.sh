#!/usr/bin/env bash
# Install Docker Compose v2 (`docker compose`, the CLI plugin) for the deploy-file tests
# (`docker compose config` needs no engine). Does nothing when `docker compose version` already
# reports v2.
#
# Where from: Debian's own `docker-compose` package of the next release (trixie), which is
# Compose v2 (2.26.1) built by Debian; bookworm's package of that name is the end-of-life
# Python 1.29. The package is fetched with apt from a private, throw-away source list (the
# machine's sources stay bookworm only), verified by apt against Debian's archive key and here
# against the SHA-256 pinned below, and only its plugin binary is copied to
# /usr/local/lib/docker/cli-plugins/docker-compose (nothing is registered with dpkg). It needs
# glibc 2.34 or newer (bookworm has 2.36). Docker's own apt repository and the GitHub release
# binaries are the usual sources elsewhere; this machine kind reaches only Debian's mirrors.
set -euo pipefail

VERSION="2.26.1-4"
SHA256="47681197cb2b1ab88206b42a1a92fc75f50d9530a6322d03494a473eed0408ea"  # the amd64 .deb
PLUGIN_DIR="${DOCKER_CLI_PLUGIN_DIR:-/usr/local/lib/docker/cli-plugins}"

if docker compose version --short 2>/dev/null | grep -Eq '^v?2\.'; then
  exit 0
fi
if [ "$(dpkg --print-architecture)" != "amd64" ]; then
  echo "install-compose-v2.sh: only amd64 is pinned; install docker-compose-plugin by hand" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/sources" "$work/lists/partial" "$work/deb"
cat > "$work/sources/trixie.sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
apt_options=(
  -o Dir::Etc::sourcelist=/dev/null
  -o Dir::Etc::sourceparts="$work/sources"
  -o Dir::State::Lists="$work/lists"
  -o Dir::Cache::pkgcache="$work/pkgcache.bin"
  -o Dir::Cache::srcpkgcache="$work/srcpkgcache.bin"
  -o APT::Sandbox::User=root
)
echo "installing Docker Compose v2 ($VERSION, Debian trixie's docker-compose) into $PLUGIN_DIR" >&2
apt-get -q "${apt_options[@]}" update >/dev/null
if ! (cd "$work/deb" && apt-get -q "${apt_options[@]}" download "docker-compose=$VERSION" >/dev/null); then
  echo "install-compose-v2.sh: docker-compose $VERSION is not on Debian's mirror any more:" \
    "pin the current version and its SHA-256 in scripts/install-compose-v2.sh" >&2
  exit 1
fi
deb="$(ls "$work"/deb/docker-compose_*.deb)"
echo "$SHA256  $deb" | sha256sum --check --quiet
dpkg-deb -x "$deb" "$work/root"
install -D -m 0755 "$work/root/usr/libexec/docker/cli-plugins/docker-compose" \
  "$PLUGIN_DIR/docker-compose"
docker compose version
