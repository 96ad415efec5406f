# One role per node role, so a GPU node's extra S3 read never reaches the control plane.
locals {
  node_roles = toset(concat(
    ["control-plane"],
    var.worker_count > 0 ? ["worker"] : [],
    var.gpu_count > 0 ? ["gpu-worker"] : [],
  ))
}

data "aws_partition" "current" {}

data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  for_each = local.node_roles

  name               = "${var.cluster_name}-${each.key}"
  description        = "llama-platform ${each.key} node"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

# SSM core: Session Manager as a second way in when SSH is closed; nothing else is granted.
resource "aws_iam_role_policy_attachment" "ssm_core" {
  for_each = local.node_roles

  role       = aws_iam_role.node[each.key].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

data "aws_iam_policy_document" "model_cache_read" {
  count = var.model_cache_bucket != "" && var.gpu_count > 0 ? 1 : 0

  statement {
    sid       = "ListModelCache"
    actions   = ["s3:ListBucket"]
    resources = ["arn:${data.aws_partition.current.partition}:s3:::${var.model_cache_bucket}"]
  }

  statement {
    sid       = "ReadModelCache"
    actions   = ["s3:GetObject"]
    resources = ["arn:${data.aws_partition.current.partition}:s3:::${var.model_cache_bucket}/*"]
  }
}

resource "aws_iam_role_policy" "model_cache_read" {
  count = length(data.aws_iam_policy_document.model_cache_read)

  name   = "model-cache-read"
  role   = aws_iam_role.node["gpu-worker"].id
  policy = data.aws_iam_policy_document.model_cache_read[0].json
}

resource "aws_iam_instance_profile" "node" {
  for_each = local.node_roles

  name = "${var.cluster_name}-${each.key}"
  role = aws_iam_role.node[each.key].name
}
