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

locals {
  ami_id = var.ami_id != "" ? var.ami_id : data.aws_ami.ubuntu[0].id

  gpu_subnet_indexes = [for i, az in local.azs : i if contains(data.aws_ec2_instance_type_offerings.gpu.locations, az)]
  gpu_subnet_index   = length(local.gpu_subnet_indexes) > 0 ? local.gpu_subnet_indexes[0] : 0

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
  vpc_security_group_ids      = [aws_security_group.cluster.id]
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

  dynamic "instance_market_options" {
    for_each = each.value.spot ? [1] : []
    content {
      market_type = "spot"
      spot_options {
        instance_interruption_behavior = "stop"
        spot_instance_type             = "persistent"
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
  }
}
