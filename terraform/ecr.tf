# Container images of the platform's own services (chat-api, chat-ui, the optional model server),
# which are published nowhere else: `make images` builds and pushes them here (its default REGISTRY
# is the output image_registry once `make cluster` ran), and the chart pulls them with
# --set global.image.registry=<the same value>.
#
# ECR rather than images loaded into each node's containerd by the bootstrap: a replaced or added
# node pulls by itself, an upgrade is a push and a `helm upgrade` (no re-run over SSH to every
# node), and no registry password lives in the cluster: the workers' kubelets get a 12-hour token
# from their instance profile through the kubelet credential provider that node-bootstrap installs
# (scripts/install-ecr-credential-provider.sh: cloud-provider-aws's ecr-credential-provider and
# its CredentialProviderConfig for *.dkr.ecr.*.amazonaws.com).
# (Issue 14: a file of its own so the rest of terraform/ stays as it is.)

locals {
  platform_images = toset(["chat-api", "chat-ui", "vllm-llama"])
}

data "aws_caller_identity" "current" {}

resource "aws_ecr_repository" "platform" {
  for_each = local.platform_images

  # <cluster>/llama-platform/<image>: two clusters in one account do not share images.
  name = "${var.cluster_name}/llama-platform/${each.key}"
  # make images pushes <appVersion> (what the chart deploys) again after a rebuild of the same
  # release; <appVersion>-<git revision> tags keep every build addressable.
  image_tag_mutability = "MUTABLE"
  # make destroy removes the repositories even with images in them.
  force_delete = true

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
  }
}

resource "aws_ecr_lifecycle_policy" "platform" {
  for_each = aws_ecr_repository.platform

  repository = each.value.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Keep the 30 newest images; a rollback rarely goes further back."
      selection = {
        tagStatus   = "any"
        countType   = "imageCountMoreThan"
        countNumber = 30
      }
      action = { type = "expire" }
    }]
  })
}

# Pull only, and only these repositories (GetAuthorizationToken has no resource scope), and only
# for the roles whose nodes run the platform's pods: the workers (chat-api, chat-ui) and the GPU
# workers (the optional vllm-llama image). The control plane pulls nothing of ours.
data "aws_iam_policy_document" "ecr_pull" {
  statement {
    sid       = "EcrToken"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "PullPlatformImages"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [for repository in aws_ecr_repository.platform : repository.arn]
  }
}

resource "aws_iam_role_policy" "ecr_pull" {
  for_each = setintersection(local.node_roles, ["worker", "gpu-worker"])

  name   = "ecr-pull-platform-images"
  role   = aws_iam_role.node[each.key].id
  policy = data.aws_iam_policy_document.ecr_pull.json
}

output "image_registry" {
  description = "Where make images pushes and global.image.registry points: <account>.dkr.ecr.<region>.amazonaws.com/<cluster>."
  value       = "${data.aws_caller_identity.current.account_id}.dkr.ecr.${var.region}.amazonaws.com/${var.cluster_name}"
}
