#!/usr/bin/env bash
# Start RabbitMQ and PostgreSQL when they are not answering, then wait until both are ready.
# Installs what the tests need from Debian's packages when it is missing (rabbitmq-server,
# postgresql, prometheus for promtool, chromium and
# chromium-driver for the gallery's browser test); kubectl,
# for kustomize builds of the Kubernetes manifests, comes with the machine.
set -euo pipefail

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

missing=()  # Debian packages to install, in one apt-get run
command -v rabbitmq-server >/dev/null || missing+=(rabbitmq-server)
command -v promtool >/dev/null || missing+=(prometheus)  # promtool and prometheus: rule tests
command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
command -v chromium >/dev/null || missing+=(chromium)  # the gallery's browser test
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v spamassassin >/dev/null || missing+=(spamassassin)  # the spam-score test of every email
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# --- test tools of the deploy files (issue 22) ---------------------------------------------
# Compose v2 (`docker compose config`, no engine needed), never the end-of-life docker-compose 1.x.
"$(dirname "$0")/install-compose-v2.sh"
# --- end of the deploy-file test tools -------------------------------------------------------
if ! command -v kubectl >/dev/null; then
  # kubectl (for `kubectl kustomize`) comes with this machine kind's Google Cloud SDK, whose apt
  # source is disabled here, so it cannot be installed from a registry this kind reaches.
  echo "kubectl is missing: the Kubernetes manifest tests (tests/unit/test_deploy_files.py) will fail" >&2
fi

if ! rabbit_ready; then
  echo "starting RabbitMQ"
  rabbitmq-server -detached || true
fi
if ! postgres_ready; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
wait_for RabbitMQ rabbit_ready 120
wait_for PostgreSQL postgres_ready 60
