# One security group for every node. Node-to-node traffic (etcd 2379-2380, kubelet 10250,
# controller-manager 10257, scheduler 10259, API 6443, Calico VXLAN UDP 4789 / Typha 5473)
# is covered by the self rule; from outside only the narrow rules below are open.
resource "aws_security_group" "cluster" {
  name        = "${var.cluster_name}-cluster"
  description = "llama-platform kubeadm nodes: self traffic plus SSH/API from admin CIDRs"
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

# The chat UI and /v1 on the edge worker only: HTTPS to the clients. No NodePort range is open:
# chat-ui's nginx takes ports 80/443 of the edge worker's address (charts/platform/charts/chat-ui,
# edge). A group of its own, attached to that worker alone: the control plane and the GPU node
# keep 80/443 closed.
resource "aws_security_group" "edge" {
  name        = "${var.cluster_name}-edge"
  description = "llama-platform edge worker: HTTPS to the chat UI and /v1, HTTP redirect and ACME challenge"
  vpc_id      = aws_vpc.this.id

  tags = { Name = "${var.cluster_name}-edge" }
}

resource "aws_vpc_security_group_ingress_rule" "https_clients" {
  for_each = toset(var.client_cidrs)

  security_group_id = aws_security_group.edge.id
  description       = "HTTPS to the chat UI and /v1 on the edge, client CIDR ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

# Port 80 answers only a redirect to HTTPS and the ACME HTTP-01 challenge: no page, no API.
# Let's Encrypt validates from addresses it does not publish (several vantage points at once), so
# certificates from it need port 80 open to the internet; without that, to the clients only.
resource "aws_vpc_security_group_ingress_rule" "http_redirect" {
  for_each = toset(var.acme_http01_from_anywhere ? ["0.0.0.0/0"] : var.client_cidrs)

  security_group_id = aws_security_group.edge.id
  description       = "HTTP: redirect to HTTPS and the ACME challenge only, from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
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
