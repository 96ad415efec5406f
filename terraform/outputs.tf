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
      # The control plane's Elastic IP; the others' current address (read after a refresh:
      # node_bootstrap runs `terraform apply -refresh-only` before it reads this output).
      public_ip  = node.role == "control-plane" ? aws_eip.control_plane.public_ip : aws_instance.node[name].public_ip
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
  value       = { for name, node in local.nodes : name => "ssh ${var.ssh_user}@${node.role == "control-plane" ? aws_eip.control_plane.public_ip : aws_instance.node[name].public_ip}" }
}
