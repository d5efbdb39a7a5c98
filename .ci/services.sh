#!/usr/bin/env bash
# Installs (if needed) and starts MariaDB and Redis on 127.0.0.1 without systemd or Docker, then
# creates the test database and user. Idempotent: services already started by an earlier call
# are reused. Prints the two URLs the test suite takes, as shell assignments.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
BASE=${MVP_SERVICES_DIR:-/tmp/mvp-ci-services}
SOCK="$BASE/mysql/run/mysqld.sock"

need_install=()
command -v mariadbd >/dev/null 2>&1 || need_install+=(mariadb-server)
command -v redis-server >/dev/null 2>&1 || need_install+=(redis-server)
if [ ${#need_install[@]} -gt 0 ]; then
  # apt must not try to start the packaged services (there is no init system to do it).
  [ -x /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need_install[@]}" >/dev/null
fi

mkdir -p "$BASE/mysql/data" "$BASE/mysql/run" "$BASE/redis"
if ! mariadb-admin --socket="$SOCK" ping >/dev/null 2>&1; then
  if [ ! -d "$BASE/mysql/data/mysql" ]; then
    mariadb-install-db --no-defaults --datadir="$BASE/mysql/data" --user=root \
      --auth-root-authentication-method=socket --skip-test-db >"$BASE/mysql/install-db.log" 2>&1
  fi
  nohup mariadbd --no-defaults --datadir="$BASE/mysql/data" --user=root \
    --bind-address=127.0.0.1 --port=3306 --socket="$SOCK" \
    --pid-file="$BASE/mysql/run/mysqld.pid" --log-error="$BASE/mysql/mysqld.err" \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci >/dev/null 2>&1 &
fi
if [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" != PONG ]; then
  redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save '' --appendonly no \
    --dir "$BASE/redis" --pidfile "$BASE/redis/redis.pid" --logfile "$BASE/redis/redis.log"
fi

for _ in $(seq 1 120); do mariadb-admin --socket="$SOCK" ping >/dev/null 2>&1 && break; sleep 0.5; done
mariadb-admin --socket="$SOCK" ping >/dev/null || { echo "MariaDB did not start: $(tail -5 "$BASE/mysql/mysqld.err")" >&2; exit 1; }
for _ in $(seq 1 120); do [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ] && break; sleep 0.25; done
[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ] || { echo "Redis did not start" >&2; exit 1; }

mariadb --socket="$SOCK" -uroot <<'SQL'
CREATE DATABASE IF NOT EXISTS mvp_test CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS 'mvp'@'127.0.0.1' IDENTIFIED BY 'mvp-test-password';
CREATE USER IF NOT EXISTS 'mvp'@'localhost' IDENTIFIED BY 'mvp-test-password';
GRANT ALL PRIVILEGES ON `mvp_test`.* TO 'mvp'@'127.0.0.1', 'mvp'@'localhost';
FLUSH PRIVILEGES;
SQL
echo "MVP_TEST_DATABASE_URL=mysql://mvp:mvp-test-password@127.0.0.1:3306/mvp_test"
echo "MVP_TEST_REDIS_URL=redis://127.0.0.1:6379"
