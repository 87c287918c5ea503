#!/usr/bin/env bash
# Starts and stops local PostgreSQL nodes on loopback for the demo and the
# acceptance tests: an access node and N data nodes, each in its own data
# directory under DIR, on free ports, as the `postgres` OS user when run as
# root (initdb refuses root).
#
#   tests/cluster.sh start DIR [N]   start access + N data nodes (default 2)
#   tests/cluster.sh stop DIR        stop every node under DIR
#   tests/cluster.sh env DIR         print the nodes as NAME=PORT lines
#   tests/cluster.sh stop-node DIR NAME    stop one node (fast shutdown)
#   tests/cluster.sh start-node DIR NAME   start it again on its port
#
# `start` prints one line per node, "NAME PORT", and writes DIR/nodes.
# With NETNS set (as root), the nodes run in that network namespace: on its
# loopback, which nothing outside the namespace reaches.
set -euo pipefail

pgbin() {
  if [ -n "${PGBIN:-}" ]; then echo "$PGBIN"; return; fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] || { echo "no PostgreSQL server found under /usr/lib/postgresql; run 'make deps'" >&2; exit 1; }
  echo "$d"
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then in_ns runuser -u postgres -- "$@"; else in_ns "$@"; fi
}

# Runs a command in NETNS when it is set.
in_ns() {
  if [ -n "${NETNS:-}" ]; then ip netns exec "$NETNS" "$@"; else "$@"; fi
}

free_port() {
  in_ns python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# One initdb per machine and server version; nodes are copies of it.
template() {
  local bin=$1 version dir
  version=$("$bin/postgres" --version | awk '{print $NF}')
  dir="${TMPDIR:-/tmp}/tsdb-provider-template-$version"
  if [ ! -f "$dir/PG_VERSION" ]; then
    local tmp="$dir.tmp.$$"
    rm -rf "$tmp"; mkdir -p "$tmp"
    [ "$(id -u)" = 0 ] && chown postgres: "$tmp"
    as_pg "$bin/initdb" -D "$tmp" -U postgres --auth=trust --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
    mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
  fi
  echo "$dir"
}

# Server options of a node: loopback only, its own socket directory, no
# durability (test data is thrown away), and logging turned all the way up
# (every statement with its parameters in full, each line naming the
# application), so tests can prove that no secret reaches a server's log.
server_opts() {
  echo "-p $3 -c listen_addresses=127.0.0.1 -c unix_socket_directories=$1/sock-$2 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100 -c max_prepared_transactions=20 -c log_statement=all -c log_min_duration_statement=0 -c log_parameter_max_length=-1 -c log_parameter_max_length_on_error=-1 -c log_line_prefix='%m [%p] %a: '"
}

start() {
  local dir=$1 n=${2:-2} bin tpl
  bin=$(pgbin)
  tpl=$(template "$bin")
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  chmod 755 "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  : > "$dir/nodes"
  local names=(access)
  for i in $(seq 1 "$n"); do names+=("dn$i"); done
  for name in "${names[@]}"; do
    local data="$dir/$name" port
    rm -rf "$data"
    cp -a "$tpl" "$data"
    mkdir -p "$dir/sock-$name"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir/sock-$name"
    for attempt in 1 2 3 4 5; do
      port=$(free_port)
      if as_pg "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 30 \
          -o "$(server_opts "$dir" "$name" "$port")" \
          start >/dev/null; then
        break
      fi
      port=""
    done
    [ -n "$port" ] || { echo "could not start node $name; see $data/server.log" >&2; exit 1; }
    echo "$name $port" | tee -a "$dir/nodes"
  done
}

stop() {
  local dir=$1 bin
  bin=$(pgbin)
  [ -d "$dir" ] || return 0
  for data in "$dir"/*/; do
    [ -f "$data/postmaster.pid" ] || continue
    as_pg "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
  done
}

node_opts() {
  local dir=$1 name=$2 port
  port=$(awk -v n="$name" '$1 == n {print $2}' "$dir/nodes")
  [ -n "$port" ] || { echo "no node $name in $dir/nodes" >&2; exit 1; }
  server_opts "$dir" "$name" "$port"
}

stop_node() {
  local dir=$1 name=$2 bin
  bin=$(pgbin)
  as_pg "$bin/pg_ctl" -D "$dir/$name" -m fast -w stop >/dev/null
}

start_node() {
  local dir name=$2 bin opts
  dir=$(cd "$1" && pwd)
  bin=$(pgbin)
  opts=$(node_opts "$dir" "$name")
  as_pg "$bin/pg_ctl" -D "$dir/$name" -l "$dir/$name/server.log" -w -t 30 -o "$opts" start >/dev/null
}

case "${1:-}" in
  start) start "$2" "${3:-2}" ;;
  stop) stop "$2" ;;
  env) awk '{print $1"="$2}' "$2/nodes" ;;
  stop-node) stop_node "$2" "$3" ;;
  start-node) start_node "$2" "$3" ;;
  *) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac
