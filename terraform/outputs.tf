# `inventory` is the contract with node-bootstrap (node_bootstrap.inventory reads
# `terraform output -json inventory`); change both together.
output "inventory" {
  description = "What the bootstrap needs: cluster settings and one entry per node."
  value = {
    cluster_name       = var.cluster_name
    kubernetes_version = var.kubernetes_version
    region             = var.region
    ssh_user           = var.ssh_user
    vpc_cidr           = var.vpc_cidr
    nodes = [for name, node in local.nodes : {
      name          = name
      role          = node.role
      instance_id   = aws_instance.node[name].id
      instance_type = node.instance_type
      # The control plane's and the edge worker's Elastic IPs; the others' current address (read
      # after a refresh: node_bootstrap runs `terraform apply -refresh-only` before it reads this output).
      public_ip  = node.role == "control-plane" ? aws_eip.control_plane.public_ip : name == local.edge_node ? aws_eip.edge[0].public_ip : aws_instance.node[name].public_ip
      private_ip = aws_instance.node[name].private_ip
      az         = aws_instance.node[name].availability_zone
    }]
  }
}

output "control_plane_endpoint" {
  description = "Public API server URL written into the kubeconfig."
  value       = "https://${aws_eip.control_plane.public_ip}:6443"
}

output "ssh_commands" {
  description = "How to log in to each node by hand."
  value       = { for name, node in local.nodes : name => "ssh ${var.ssh_user}@${node.role == "control-plane" ? aws_eip.control_plane.public_ip : name == local.edge_node ? aws_eip.edge[0].public_ip : aws_instance.node[name].public_ip}" }
}

output "edge" {
  description = "Where the chat UI and /v1 are served: the edge worker, its Elastic IP and the zero-configuration host name."
  value = local.edge_node == "" ? null : {
    node       = local.edge_node
    public_ip  = aws_eip.edge[0].public_ip
    private_ip = aws_instance.node[local.edge_node].private_ip
    url        = "https://${replace(aws_eip.edge[0].public_ip, ".", "-")}.sslip.io"
  }
}

# The machine-specific Helm values of values/aws-*.yaml:
#   terraform -chdir=terraform output -raw edge_values > edge.yaml
# <a-b-c-d>.sslip.io resolves to a.b.c.d on sslip.io's public DNS: a certificate name without a
# domain of your own. With your own domain, point an A record at the Elastic IP and override
# chat-ui.tls.host (a later -f file or --set).
output "edge_values" {
  description = "Helm values for the edge (chat-ui.edge, chat-ui.nodeSelector, chat-ui.tls.host, chat-api.store.redis.nodeSelector) as YAML."
  value = local.edge_node == "" ? "# worker_count is 0: no edge worker, serve the UI another way\n" : yamlencode({
    "chat-ui" = {
      edge         = { externalIPs = [aws_instance.node[local.edge_node].private_ip] }
      nodeSelector = { "kubernetes.io/hostname" = local.edge_node }
      tls          = { host = "${replace(aws_eip.edge[0].public_ip, ".", "-")}.sslip.io" }
    }
    "chat-api" = {
      store = { redis = { nodeSelector = { "kubernetes.io/hostname" = local.edge_node } } }
    }
  })
}
