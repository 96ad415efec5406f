# One security group for every node. Node-to-node traffic (etcd 2379-2380, kubelet 10250,
# controller-manager 10257, scheduler 10259, API 6443, Calico VXLAN UDP 4789 / Typha 5473)
# is covered by the self rule; from outside only the narrow rules below are open.
resource "aws_security_group" "cluster" {
  name        = "${var.cluster_name}-cluster"
  description = "llama-platform kubeadm nodes: self traffic plus SSH/API from admin CIDRs and NodePorts from client CIDRs"
  vpc_id      = aws_vpc.this.id

  tags = { Name = "${var.cluster_name}-cluster" }
}

resource "aws_vpc_security_group_ingress_rule" "self" {
  security_group_id            = aws_security_group.cluster.id
  description                  = "node to node: etcd, kubelet, control plane, Calico VXLAN and Typha"
  ip_protocol                  = "-1"
  referenced_security_group_id = aws_security_group.cluster.id
}

resource "aws_vpc_security_group_ingress_rule" "ssh_admin" {
  for_each = toset(var.admin_cidrs)

  security_group_id = aws_security_group.cluster.id
  description       = "SSH for the bootstrap, admin CIDR ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "api_admin" {
  for_each = toset(var.admin_cidrs)

  security_group_id = aws_security_group.cluster.id
  description       = "Kubernetes API for kubectl/helm, admin CIDR ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 6443
  to_port           = 6443
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "nodeport_clients" {
  for_each = toset(var.client_cidrs)

  security_group_id = aws_security_group.cluster.id
  description       = "NodePort services (chat UI), client CIDR ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 30000
  to_port           = 32767
  cidr_ipv4         = each.value
}

# ICMP type 3 code 4 ("fragmentation needed") must come back from anywhere on the path, or
# path-MTU discovery breaks with the 8951-byte VPC MTU that Calico uses.
resource "aws_vpc_security_group_ingress_rule" "icmp_path_mtu" {
  security_group_id = aws_security_group.cluster.id
  description       = "ICMP fragmentation-needed for path-MTU discovery"
  ip_protocol       = "icmp"
  from_port         = 3
  to_port           = 4
  cidr_ipv4         = "0.0.0.0/0"
}

# Nodes pull apt packages, container images and model weights from the internet.
resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.cluster.id
  description       = "outbound: apt, registries, Hugging Face, AWS APIs"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}
