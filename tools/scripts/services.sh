#!/usr/bin/env bash
# Real servers for the tests that talk to Redis and RabbitMQ (bus-bridge and its
# transport components). Sourced by tools/scripts/test.sh; a developer can do the
# same by hand:
#
#   source tools/scripts/services.sh
#   services_start          # exports SHMBUS_TEST_* (see below), returns when both answer
#   ctest -R transport      # the tests read the ports from the environment at run time
#   services_stop
#
# Each server gets a loopback port of its own (never the default one), a private
# directory under $SHMBUS_SERVICES_DIR (default: a fresh mktemp dir) and a bounded
# start: if a server is not up within $SHMBUS_SERVICES_TIMEOUT seconds (default 120),
# services_start prints the server's log and returns 1; CI never hangs on it.
# RabbitMQ takes 5-8 s to boot, so it is launched first, in the background, and
# Redis is started and checked while the Erlang VM comes up.
#
# Exported for the tests:
#   SHMBUS_TEST_REDIS_PORT                      redis-server (no auth on the default user)
#   SHMBUS_TEST_REDIS_USER, _REDIS_PASSWORD     an ACL user with a password (AUTH tests)
#   SHMBUS_TEST_AMQP_PORT                       rabbitmq-server, AMQP 0-9-1 listener
#   SHMBUS_TEST_AMQP_USER, _AMQP_PASSWORD, _AMQP_VHOST   a user with a password and its vhost
#   SHMBUS_TEST_AMQP_ISOLATED_VHOST   a second vhost (same user) for the test that closes
#                                     all connections of its vhost
#   SHMBUS_TEST_AMQP_NODE, SHMBUS_TEST_RABBITMQCTL       for tests that drive rabbitmqctl
#   SHMBUS_TEST_RABBITMQ_ENV                    a file to source for rabbitmqctl's environment
#
# Safe under `set -euo pipefail` (test.sh) and in an interactive shell (no `exit`).

_svc_log() { printf 'services: %s\n' "$*" >&2; }

# A free loopback TCP port, chosen by the kernel (bind to port 0), distinct from
# any passed as arguments. Ports below 20000 are avoided so we never land on a
# default one.
_svc_free_port() {
  local p
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    p=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    if ((p >= 20000)) && [[ " $* " != *" $p "* ]]; then
      echo "$p"
      return 0
    fi
  done
  shuf -i 20000-40000 -n 1
}

# Polls "$@" until it succeeds or $1 seconds pass. Returns 1 on timeout.
_svc_wait_for() {
  local timeout=$1; shift
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

_svc_rabbit_env() {
  # Everything rabbitmq-server and rabbitmqctl need to run as this user, with a
  # home and ports of their own (see ENVIRONMENT.md: the /usr/sbin wrappers switch
  # users and lose the cookie).
  local d=$1
  cat <<EOF
export HOME='$d'
export RABBITMQ_NODENAME='$SHMBUS_TEST_AMQP_NODE'
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT='$SHMBUS_TEST_AMQP_PORT'
export RABBITMQ_DIST_PORT='$_svc_rabbit_dist_port'
export ERL_EPMD_ADDRESS=127.0.0.1
export ERL_EPMD_PORT='$_svc_epmd_port'
export RABBITMQ_MNESIA_BASE='$d/mnesia'
export RABBITMQ_LOG_BASE='$d/log'
export RABBITMQ_PID_FILE='$d/rabbit.pid'
export RABBITMQ_ENABLED_PLUGINS_FILE='$d/enabled_plugins'
export RABBITMQ_CONFIG_FILE='$d/rabbitmq.conf'
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}'
EOF
}

_svc_rabbit_start_bg() {
  local d=$SHMBUS_SERVICES_DIR/rabbitmq
  mkdir -p "$d/mnesia" "$d/log"
  echo '[].' >"$d/enabled_plugins"
  cat >"$d/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$SHMBUS_TEST_AMQP_PORT
loopback_users = none
# The test user, its password and vhost are created at first boot: no rabbitmqctl
# call (each one boots an Erlang VM: 1 s idle, 10-30 s on a loaded 2-core machine).
default_vhost = $SHMBUS_TEST_AMQP_VHOST
default_user = $SHMBUS_TEST_AMQP_USER
default_pass = $SHMBUS_TEST_AMQP_PASSWORD
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
default_user_tags.administrator = true
log.console = false
log.file.level = info
EOF
  _svc_rabbit_env "$d" >"$d/env.sh"
  export SHMBUS_TEST_RABBITMQ_ENV=$d/env.sh
  # A subshell so the RABBITMQ_* variables do not leak into the caller.
  (
    # shellcheck source=/dev/null
    source "$d/env.sh"
    exec /usr/lib/rabbitmq/bin/rabbitmq-server -detached
  ) >"$d/start.log" 2>&1 </dev/null
}

_svc_rabbitmqctl() {
  (
    # shellcheck source=/dev/null
    source "$SHMBUS_TEST_RABBITMQ_ENV"
    timeout "$SHMBUS_SERVICES_TIMEOUT" /usr/lib/rabbitmq/bin/rabbitmqctl -n "$SHMBUS_TEST_AMQP_NODE" "$@"
  ) </dev/null
}

_svc_rabbit_finish() {
  local d=$SHMBUS_SERVICES_DIR/rabbitmq t=$SHMBUS_SERVICES_TIMEOUT
  # `wait` first: await_startup fails at once when the node has not registered.
  if ! timeout "$((t + 5))" bash -c "source '$d/env.sh'; /usr/lib/rabbitmq/bin/rabbitmqctl \
        -n '$SHMBUS_TEST_AMQP_NODE' wait '$d/rabbit.pid' --timeout $t" >"$d/wait.log" 2>&1 </dev/null ||
     ! timeout "$((t + 5))" bash -c "source '$d/env.sh'; /usr/lib/rabbitmq/bin/rabbitmqctl \
        -n '$SHMBUS_TEST_AMQP_NODE' await_startup --timeout $t" >>"$d/wait.log" 2>&1 </dev/null; then
    _svc_log "rabbitmq-server did not start within ${t}s on 127.0.0.1:$SHMBUS_TEST_AMQP_PORT"
    tail -30 "$d/start.log" "$d/wait.log" "$d"/log/*.log 2>/dev/null >&2 || true
    return 1
  fi
  # A second vhost for the one test that closes every connection of its vhost.
  _svc_rabbitmqctl add_vhost "$SHMBUS_TEST_AMQP_ISOLATED_VHOST" >/dev/null &&
    _svc_rabbitmqctl set_permissions -p "$SHMBUS_TEST_AMQP_ISOLATED_VHOST" \
      "$SHMBUS_TEST_AMQP_USER" '.*' '.*' '.*' >/dev/null || {
    _svc_log "rabbitmq-server started but vhost $SHMBUS_TEST_AMQP_ISOLATED_VHOST could not be set up"
    return 1
  }
  _svc_log "rabbitmq-server up on 127.0.0.1:$SHMBUS_TEST_AMQP_PORT (node $SHMBUS_TEST_AMQP_NODE)"
}

_svc_redis_start() {
  local d=$SHMBUS_SERVICES_DIR/redis
  mkdir -p "$d"
  # The default user stays passwordless (most tests); the ACL user exercises AUTH.
  redis-server --port "$SHMBUS_TEST_REDIS_PORT" --bind 127.0.0.1 --daemonize yes --save '' \
    --appendonly no --dir "$d" --pidfile "$d/redis.pid" --logfile "$d/redis.log" \
    >"$d/start.log" 2>&1 </dev/null || true
  if ! _svc_wait_for 20 redis-cli -p "$SHMBUS_TEST_REDIS_PORT" PING; then
    _svc_log "redis-server did not answer PING within 20s on 127.0.0.1:$SHMBUS_TEST_REDIS_PORT"
    tail -30 "$d/start.log" "$d/redis.log" 2>/dev/null >&2 || true
    return 1
  fi
  redis-cli -p "$SHMBUS_TEST_REDIS_PORT" ACL SETUSER "$SHMBUS_TEST_REDIS_USER" on \
    ">$SHMBUS_TEST_REDIS_PASSWORD" '~*' '&*' '+@all' >/dev/null
  _svc_log "redis-server up on 127.0.0.1:$SHMBUS_TEST_REDIS_PORT"
}

services_start() {
  : "${SHMBUS_SERVICES_TIMEOUT:=120}"
  if [[ -z ${SHMBUS_SERVICES_DIR:-} ]]; then
    SHMBUS_SERVICES_DIR=$(mktemp -d /tmp/shmbus-services.XXXXXX)
  fi
  export SHMBUS_SERVICES_DIR SHMBUS_SERVICES_TIMEOUT
  local used=""
  SHMBUS_TEST_REDIS_PORT=$(_svc_free_port); used+=" $SHMBUS_TEST_REDIS_PORT"
  SHMBUS_TEST_AMQP_PORT=$(_svc_free_port $used); used+=" $SHMBUS_TEST_AMQP_PORT"
  _svc_rabbit_dist_port=$(_svc_free_port $used); used+=" $_svc_rabbit_dist_port"
  _svc_epmd_port=$(_svc_free_port $used)
  # A node name of its own: several checkouts may run services on one machine.
  SHMBUS_TEST_AMQP_NODE="shmbus$$-${SHMBUS_TEST_AMQP_PORT}@localhost"
  SHMBUS_TEST_AMQP_USER=shmbus-test
  SHMBUS_TEST_AMQP_PASSWORD="amqp-${RANDOM}${RANDOM}-secret"
  SHMBUS_TEST_AMQP_VHOST=shmbus-test
  SHMBUS_TEST_AMQP_ISOLATED_VHOST=shmbus-test-isolated
  SHMBUS_TEST_REDIS_USER=shmbus-test
  SHMBUS_TEST_REDIS_PASSWORD="redis-${RANDOM}${RANDOM}-secret"
  SHMBUS_TEST_RABBITMQCTL=/usr/lib/rabbitmq/bin/rabbitmqctl
  export SHMBUS_TEST_REDIS_PORT SHMBUS_TEST_REDIS_USER SHMBUS_TEST_REDIS_PASSWORD \
    SHMBUS_TEST_AMQP_PORT SHMBUS_TEST_AMQP_USER SHMBUS_TEST_AMQP_PASSWORD SHMBUS_TEST_AMQP_VHOST \
    SHMBUS_TEST_AMQP_ISOLATED_VHOST SHMBUS_TEST_AMQP_NODE SHMBUS_TEST_RABBITMQCTL

  _svc_log "starting in $SHMBUS_SERVICES_DIR"
  _svc_rabbit_start_bg   # returns at once; the VM boots while Redis starts
  _svc_redis_start || return 1
  _svc_rabbit_finish || return 1
}

services_stop() {
  [[ -n ${SHMBUS_SERVICES_DIR:-} && -d ${SHMBUS_SERVICES_DIR:-} ]] || return 0
  local d=$SHMBUS_SERVICES_DIR
  if [[ -f $d/redis/redis.pid ]]; then
    kill "$(cat "$d/redis/redis.pid")" 2>/dev/null || true
  fi
  if [[ -f $d/rabbitmq/env.sh ]]; then
    timeout 60 bash -c "source '$d/rabbitmq/env.sh'; /usr/lib/rabbitmq/bin/rabbitmqctl \
      -n '$SHMBUS_TEST_AMQP_NODE' stop" >/dev/null 2>&1 </dev/null || true
    # If the node never answered, its pid file still names the VM.
    if [[ -f $d/rabbitmq/rabbit.pid ]]; then
      kill "$(cat "$d/rabbitmq/rabbit.pid")" 2>/dev/null || true
    fi
    # epmd outlives the node; ours listens on a port of its own, so this
    # stops only ours.
    (source "$d/rabbitmq/env.sh"; epmd -kill) >/dev/null 2>&1 || true
  fi
  _svc_log "stopped (logs kept in $d)"
}
