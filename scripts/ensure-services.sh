#!/usr/bin/env bash
# Start what Herald needs when it is not answering, then wait until it is ready.
#   scripts/ensure-services.sh --for run    what `herald run` needs: RabbitMQ, and PostgreSQL
#                                           only when HERALD_DATABASE_URL names one on this
#                                           machine (the default ledger is a SQLite file)
#   scripts/ensure-services.sh [--for test] what the tests need (the default): RabbitMQ and
#                                           PostgreSQL, and the tools the tests call
# Installs what is missing from Debian's packages: rabbitmq-server and postgresql; for the tests
# also prometheus (promtool), Compose v2 (scripts/install-compose-v2.sh: `docker compose config`
# validates the compose file; never the end-of-life docker-compose 1.x), chromium and
# chromium-driver (the gallery's browser test) and spamassassin (the spam score of every
# email). kubectl, for kustomize builds of the Kubernetes manifests, comes with the machine.
set -euo pipefail

purpose=test
case "${1:-}" in
  "") ;;
  --for) purpose="${2:-}" ;;
  --for=*) purpose="${1#--for=}" ;;
  *) purpose="" ;;
esac
if [ "$purpose" != run ] && [ "$purpose" != test ]; then
  echo "usage: scripts/ensure-services.sh [--for run|test]" >&2
  exit 2
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {  # name, check command, seconds
  local name="$1" check="$2" seconds="$3"
  for _ in $(seq "$seconds"); do
    if eval "$check"; then echo "$name is ready"; return 0; fi
    sleep 1
  done
  echo "$name did not become ready within ${seconds}s" >&2
  return 1
}

rabbit_ready() { port_open 5672 && rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1; }
postgres_ready() { pg_isready -q -h 127.0.0.1 -p 5432; }

# The ledger `herald run` will open: a local PostgreSQL needs starting, SQLite (the default) or
# a PostgreSQL elsewhere does not.
needs_local_postgres() {
  local url="${HERALD_DATABASE_URL:-sqlite:///herald.db}"
  [[ "$url" =~ ^postgres(ql)?(\+[a-z0-9]+)?://([^@/]*@)?(127\.0\.0\.1|localhost|\[::1\])?(:[0-9]+)?(/|$) ]]
}

postgres=false
if [ "$purpose" = test ] || needs_local_postgres; then
  postgres=true
fi

missing=()  # Debian packages to install, in one apt-get run
command -v rabbitmq-server >/dev/null || missing+=(rabbitmq-server)
if [ "$postgres" = true ]; then
  command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
fi
if [ "$purpose" = test ]; then
  command -v promtool >/dev/null || missing+=(prometheus)  # promtool and prometheus: rule tests
  command -v chromium >/dev/null || missing+=(chromium)  # the gallery's browser test
  command -v chromedriver >/dev/null || missing+=(chromium-driver)
  command -v spamassassin >/dev/null || missing+=(spamassassin)  # the spam score of every email
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [ "$purpose" = test ]; then
  "$(dirname "$0")/install-compose-v2.sh"  # Compose v2 for `docker compose config`, no engine
fi
if [ "$purpose" = test ] && ! command -v kubectl >/dev/null; then
  # kubectl (for `kubectl kustomize`) comes with this machine kind's Google Cloud SDK, whose apt
  # source is disabled here, so it cannot be installed from a registry this kind reaches.
  echo "kubectl is missing: the Kubernetes manifest tests (tests/unit/test_deploy_files.py) will fail" >&2
fi

if ! rabbit_ready; then
  echo "starting RabbitMQ"
  rabbitmq-server -detached || true
fi
if [ "$postgres" = true ] && ! postgres_ready; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
wait_for RabbitMQ rabbit_ready 120
if [ "$postgres" = true ]; then
  wait_for PostgreSQL postgres_ready 60
fi
