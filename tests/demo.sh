#!/usr/bin/env bash
# The playground behind `make demo`, `make example` and `make down`: an access
# node and two data nodes of plain PostgreSQL on loopback, made to look enough
# like a TimescaleDB multi-node cluster for every example to be honest:
# the access node has a foreign server per data node (postgres_fdw, named as
# TimescaleDB names data nodes), so grants on them are real; roles reach the
# data nodes over the provider's direct connections (there is no
# distributed_exec on plain PostgreSQL).
#
#   tests/demo.sh up DEMO_DIR TERRAFORM MIRROR PROVIDER   start, apply the quickstart, re-plan
#   tests/demo.sh example DEMO_DIR TERRAFORM NAME          apply examples/NAME against the playground
#   tests/demo.sh down DEMO_DIR TERRAFORM                  destroy what the examples made, stop the nodes
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

demo=${2:?demo directory}
mkdir -p "$demo"
demo=$(cd "$demo" && pwd)
terraform=${3:?terraform binary}
cluster="$demo/cluster"

port_of() { awk -v n="$1" '$1 == n {print $2}' "$cluster/nodes"; }

psql_on() {
  psql -h 127.0.0.1 -p "$(port_of "$1")" -U postgres -d postgres -qAtX -v ON_ERROR_STOP=1 "${@:2}"
}

tf() {
  TF_CLI_CONFIG_FILE="$demo/terraformrc" TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1 "$terraform" "$@"
}

running() {
  [ -f "$cluster/nodes" ] && psql_on access -c 'SELECT 1' >/dev/null 2>&1
}

# Variables every example takes, for this playground.
write_vars() {
  local dir=$1
  python3 - "$cluster/nodes" "$dir/terraform.tfvars.json" <<'EOF'
import json, sys
nodes = dict(line.split() for line in open(sys.argv[1]) if line.strip())
v = {
    "access_host": "127.0.0.1",
    "access_port": int(nodes["access"]),
    "access_address": "127.0.0.1",
    "data_nodes": {n: {"host": "127.0.0.1", "port": int(p)} for n, p in nodes.items() if n != "access"},
    # the password examples: made-up passwords for the playground only
    "testrole_client_password": "demo client password",
    "testrole_internal_password": "demo internal password",
}
v.update({f"{n}_port": int(p) for n, p in nodes.items() if n != "access"})
json.dump(v, open(sys.argv[2], "w"), indent=2)
EOF
  # Keep only what the example declares, so terraform does not warn.
  python3 - "$dir" <<'EOF'
import json, re, sys, pathlib
d = pathlib.Path(sys.argv[1])
declared = set()
for f in d.glob("*.tf"):
    declared |= set(re.findall(r'^variable\s+"([^"]+)"', f.read_text(), re.M))
p = d / "terraform.tfvars.json"
v = json.loads(p.read_text())
p.write_text(json.dumps({k: x for k, x in v.items() if k in declared}, indent=2))
EOF
}

up() {
  local mirror=${4:?mirror} provider=${5:?provider address}
  "$ROOT/tests/cluster.sh" stop "$cluster"
  rm -rf "$demo"
  mkdir -p "$demo"
  echo "==> starting an access node and two data nodes on 127.0.0.1"
  "$ROOT/tests/cluster.sh" start "$cluster" 2 >/dev/null
  local servers="CREATE EXTENSION postgres_fdw;"
  for n in $(awk '$1 != "access" {print $1}' "$cluster/nodes"); do
    servers+="CREATE SERVER $n FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '$(port_of "$n")', dbname 'postgres');"
  done
  psql_on access -c "$servers"
  printf 'provider_installation {\n  filesystem_mirror {\n    path    = "%s"\n    include = ["%s"]\n  }\n  direct {\n    exclude = ["%s"]\n  }\n}\n' \
    "$mirror" "$provider" "$provider" > "$demo/terraformrc"
  cp -r "$ROOT/examples" "$demo/examples"
  find "$demo/examples" -name '.terraform*' -prune -exec rm -rf {} +
  printf '%-8s %-10s %s\n' NODE ADDRESS PORT
  while read -r n p; do printf '%-8s %-10s %s\n' "$n" 127.0.0.1 "$p"; done < "$cluster/nodes"
  example quickstart
  echo "==> pg_hba.conf rules on dn1 now (as PostgreSQL reads them):"
  psql -h 127.0.0.1 -p "$(port_of dn1)" -U postgres -d postgres -X -P footer=off \
    -c "SELECT line_number AS line, type, database, user_name AS users, address, auth_method AS method FROM pg_hba_file_rules"
  next_steps
}

example() {
  local name=${1:?example name} dir
  running || { echo "the playground is not running: start it with 'make demo'" >&2; exit 1; }
  name=${name#examples/}
  dir="$demo/examples/$name"
  [ -d "$dir" ] || { echo "no example $name (see examples/)" >&2; exit 1; }
  write_vars "$dir"
  # The examples each build the whole set-up (the same testrole, the same
  # rules), so one is applied at a time: the one before is destroyed first.
  local current
  current=$(cat "$demo/applied" 2>/dev/null || true)
  if [ -n "$current" ] && [ "$current" != "$name" ]; then
    echo "==> examples/$current: terraform destroy (one example at a time)"
    (cd "$demo/examples/$current" && tf destroy -input=false -auto-approve -no-color >/dev/null)
  fi
  echo "==> examples/$name: terraform init"
  (cd "$dir" && tf init -input=false -no-color >/dev/null)
  echo "==> examples/$name: terraform apply"
  (cd "$dir" && tf apply -input=false -auto-approve -no-color)
  echo "==> examples/$name: terraform plan (a second plan must find nothing to change)"
  (cd "$dir" && tf plan -input=false -no-color -detailed-exitcode >/dev/null) ||
    { echo "the second plan found changes" >&2; exit 1; }
  echo "==> no changes: the live nodes match examples/$name"
  echo "$name" > "$demo/applied"
}

next_steps() {
  local dn1 access
  dn1=$(port_of dn1)
  access=$(port_of access)
  cat <<EOF

The playground stays up. Things to try (each from this directory):

  Re-plan the last example applied: nothing has changed, so nothing to do
    make plan

  Make drift by hand, then watch plan name it and apply repair it
    psql -h 127.0.0.1 -p $dn1 -U postgres -c "DROP ROLE testrole"
    psql -h 127.0.0.1 -p $dn1 -U postgres -c "SELECT pg_reload_conf()"   # after editing pg_hba.conf by hand
    make plan        # shows testrole missing on dn1
    make apply       # puts it back

  Try another example (trust, password, certificate, environments/dev, ...);
  the one applied before is destroyed first, since each builds the whole set-up
    make example NAME=password

  Look around
    psql -h 127.0.0.1 -p $access -U postgres        # the access node (dn1: $dn1, dn2: $(port_of dn2))

  Stop: destroy what the examples made and stop the nodes
    make down
EOF
}

down() {
  if running && [ -s "$demo/applied" ]; then
    local name
    name=$(cat "$demo/applied")
    echo "==> examples/$name: terraform destroy"
    (cd "$demo/examples/$name" && tf destroy -input=false -auto-approve -no-color >/dev/null) ||
      echo "destroy of examples/$name failed; the nodes are stopped anyway" >&2
  fi
  "$ROOT/tests/cluster.sh" stop "$cluster"
  rm -rf "$demo"
  echo "==> the playground is stopped and removed"
}

case "${1:-}" in
  up) up "$@" ;;
  example) example "${4:-}" ;;
  plan | apply)
    running || { echo "the playground is not running: start it with 'make demo'" >&2; exit 1; }
    last=$(cat "$demo/applied" 2>/dev/null || echo quickstart)
    (cd "$demo/examples/$last" && tf "$1" -input=false -no-color $([ "$1" = apply ] && echo -auto-approve))
    ;;
  down) down ;;
  *) sed -n '2,13p' "$0" >&2; exit 2 ;;
esac
