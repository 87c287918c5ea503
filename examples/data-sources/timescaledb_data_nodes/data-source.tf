data "timescaledb_data_nodes" "all" {}

output "data_node_names" {
  value = [for n in data.timescaledb_data_nodes.all.nodes : n.name]
}
