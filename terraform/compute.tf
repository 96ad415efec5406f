# Canonical's Ubuntu 22.04 amd64 image, newest first; ami_id overrides it (a pinned or
# hardened image, or a test endpoint without Canonical's catalogue).
data "aws_ami" "ubuntu" {
  count = var.ami_id == "" ? 1 : 0

  most_recent = true
  owners      = ["099720109477"] # Canonical

  filter {
    name   = "name"
    values = ["ubuntu/images/hvm-ssd*/ubuntu-jammy-22.04-amd64-server-*"]
  }

  filter {
    name   = "virtualization-type"
    values = ["hvm"]
  }

  filter {
    name   = "architecture"
    values = ["x86_64"]
  }
}

# GPU types are not offered in every AZ: put GPU nodes in a subnet whose AZ offers the type.
data "aws_ec2_instance_type_offerings" "gpu" {
  location_type = "availability-zone"

  filter {
    name   = "instance-type"
    values = [var.gpu_instance_type]
  }
}

# New accounts often have 0 vCPUs of G and VT instances: read the quota before anything is
# created, so a too-small quota fails the plan instead of `terraform apply` half way (VPC, IAM
# and two billed instances already there, then a raw VcpuLimitExceeded).
data "aws_ec2_instance_type" "gpu" {
  count         = var.gpu_count > 0 ? 1 : 0
  instance_type = var.gpu_instance_type
}

data "aws_servicequotas_service_quota" "gpu_vcpus" {
  count        = var.gpu_count > 0 && var.check_gpu_quota ? 1 : 0
  service_code = "ec2"
  quota_code   = local.gpu_quota.code
}

locals {
  ami_id = var.ami_id != "" ? var.ami_id : data.aws_ami.ubuntu[0].id

  gpu_subnet_indexes = [for i, az in local.azs : i if contains(data.aws_ec2_instance_type_offerings.gpu.locations, az)]
  gpu_subnet_index   = length(local.gpu_subnet_indexes) > 0 ? local.gpu_subnet_indexes[0] : 0

  # Service Quotas codes of EC2's vCPU quotas for G and VT instances (on-demand and spot are separate).
  gpu_quota = var.gpu_spot ? {
    code = "L-3819A6DF"
    name = "All G and VT Spot Instance Requests"
    } : {
    code = "L-DB2E81BA"
    name = "Running On-Demand G and VT instances"
  }
  gpu_vcpus_needed  = var.gpu_count > 0 ? var.gpu_count * data.aws_ec2_instance_type.gpu[0].default_vcpus : 0
  gpu_vcpus_granted = var.gpu_count > 0 && var.check_gpu_quota ? floor(data.aws_servicequotas_service_quota.gpu_vcpus[0].value) : local.gpu_vcpus_needed

  # The bootstrap inventory: one entry per node, keyed by the node's Kubernetes name.
  nodes = merge(
    {
      "${var.cluster_name}-cp-1" = {
        role          = "control-plane"
        instance_type = var.control_plane_instance_type
        volume_gb     = var.root_volume_gb
        subnet_index  = 0
        spot          = false
      }
    },
    { for i in range(var.worker_count) : "${var.cluster_name}-worker-${i + 1}" => {
      role          = "worker"
      instance_type = var.worker_instance_type
      volume_gb     = var.root_volume_gb
      subnet_index  = (i + 1) % length(local.azs)
      spot          = false
    } },
    { for i in range(var.gpu_count) : "${var.cluster_name}-gpu-${i + 1}" => {
      role          = "gpu-worker"
      instance_type = var.gpu_instance_type
      volume_gb     = var.gpu_root_volume_gb
      subnet_index  = local.gpu_subnet_index
      spot          = var.gpu_spot
    } },
  )
}

resource "aws_key_pair" "admin" {
  key_name   = "${var.cluster_name}-admin"
  public_key = var.ssh_public_key
}

resource "aws_instance" "node" {
  for_each = local.nodes

  ami                         = local.ami_id
  instance_type               = each.value.instance_type
  subnet_id                   = aws_subnet.public[each.value.subnet_index].id
  vpc_security_group_ids      = concat([aws_security_group.cluster.id], each.key == local.edge_node ? [aws_security_group.edge.id] : [])
  key_name                    = aws_key_pair.admin.key_name
  iam_instance_profile        = aws_iam_instance_profile.node[each.value.role].name
  associate_public_ip_address = true
  ebs_optimized               = true
  monitoring                  = var.detailed_monitoring
  # Calico runs VXLAN: pod traffic leaves a node wrapped in the node's own address, so the
  # EC2 source/destination check can stay on (it would have to be off for unencapsulated routing).
  source_dest_check = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required" # IMDSv2 only
    http_put_response_hop_limit = 1          # pods cannot reach the node's credentials
    instance_metadata_tags      = "disabled"
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = each.value.volume_gb
    encrypted             = true
    delete_on_termination = true
  }

  # One-time requests: a persistent request outlives `terraform destroy` and starts a new,
  # billed instance (terraform-provider-aws#38142). A reclaimed node is terminated; the next
  # `make cluster` creates it again and the bootstrap joins it under its old name.
  dynamic "instance_market_options" {
    for_each = each.value.spot ? [1] : []
    content {
      market_type = "spot"
      spot_options {
        instance_interruption_behavior = "terminate"
        spot_instance_type             = "one-time"
        max_price                      = var.gpu_spot_max_price != "" ? var.gpu_spot_max_price : null
      }
    }
  }

  tags = {
    Name                      = each.key
    "llama-platform/role"     = each.value.role
    "llama-platform/k8s-name" = each.key
  }

  volume_tags = {
    Name = "${each.key}-root"
  }

  lifecycle {
    # A newer Ubuntu image must not replace running nodes; taint a node to rebuild it.
    ignore_changes = [ami]

    precondition {
      condition     = each.value.role != "gpu-worker" || length(local.gpu_subnet_indexes) > 0
      error_message = "${var.gpu_instance_type} is not offered in any of the zones ${join(", ", local.azs)} of ${var.region}. Fix: set availability_zones to zones that offer it (aws ec2 describe-instance-type-offerings --location-type availability-zone --filters Name=instance-type,Values=${var.gpu_instance_type} --region ${var.region}), or pick another gpu_instance_type."
    }

    precondition {
      condition     = each.value.role != "gpu-worker" || local.gpu_vcpus_needed <= local.gpu_vcpus_granted
      error_message = "GPU quota too low in ${var.region}: ${var.gpu_count} x ${var.gpu_instance_type} need ${local.gpu_vcpus_needed} vCPUs of '${local.gpu_quota.name}' (${local.gpu_quota.code}), the account is granted ${local.gpu_vcpus_granted}. Nothing was created. Fix: request at least ${local.gpu_vcpus_needed} at https://console.aws.amazon.com/servicequotas/home/services/ec2/quotas/${local.gpu_quota.code} (or: aws service-quotas request-service-quota-increase --service-code ec2 --quota-code ${local.gpu_quota.code} --desired-value ${local.gpu_vcpus_needed} --region ${var.region}); approval takes minutes to a few days. Running G instances elsewhere in the account count against it too."
    }
  }
}

# A fixed address for the control plane: its public address is in the API server certificate
# (certSANs) and in ./kubeconfig, and an instance's own public IP changes on every stop/start.
resource "aws_eip" "control_plane" {
  domain   = "vpc"
  instance = aws_instance.node["${var.cluster_name}-cp-1"].id

  tags = { Name = "${var.cluster_name}-cp-1" }

  depends_on = [aws_internet_gateway.this]
}

# The edge: a fixed address for the first CPU worker, where chat-ui's nginx takes ports 80 and 443
# (a kubeadm cluster has no cloud load balancer). Fixed, so the certificate's name
# (<address>.sslip.io, or your DNS record) survives a stop/start. EC2 translates it to the worker's
# private address, which is what the chart's edge Service lists (output edge_values).
locals {
  edge_node = var.worker_count > 0 ? "${var.cluster_name}-worker-1" : ""
}

resource "aws_eip" "edge" {
  count = var.worker_count > 0 ? 1 : 0

  domain   = "vpc"
  instance = aws_instance.node[local.edge_node].id

  tags = { Name = "${var.cluster_name}-edge" }

  depends_on = [aws_internet_gateway.this]
}
