#!/usr/bin/env bash
# Makes sure the services the test suite talks to are up on loopback: PostgreSQL (127.0.0.1:5432)
# and RabbitMQ (127.0.0.1:5672). Starts them when installed but stopped; fails clearly otherwise.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2 tries=${3:-90}
  for _ in $(seq "$tries"); do
    port_open "$port" && return 0
    sleep 1
  done
  echo "services: $name did not open 127.0.0.1:$port in ${tries}s" >&2
  return 1
}

if ! port_open 5432; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
    wait_port 5432 PostgreSQL
  else
    echo "services: PostgreSQL is not running on 127.0.0.1:5432 and is not installed (apt-get install postgresql)" >&2
    exit 1
  fi
fi

if ! port_open 5672; then
  if command -v rabbitmq-server >/dev/null 2>&1; then
    echo "services: starting RabbitMQ"
    rabbitmq-server -detached
    wait_port 5672 RabbitMQ 120
  else
    echo "services: RabbitMQ is not running on 127.0.0.1:5672 and is not installed (apt-get install rabbitmq-server)" >&2
    exit 1
  fi
fi

# The test database must exist (trust auth as the postgres user).
if command -v psql >/dev/null 2>&1; then
  if ! psql -h 127.0.0.1 -U postgres -d test -Atc 'select 1' >/dev/null 2>&1; then
    psql -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE test' >/dev/null
  fi
fi
echo "services: PostgreSQL and RabbitMQ are up"
