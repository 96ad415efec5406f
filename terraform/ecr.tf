# Container images of the platform's own services (chat-api, chat-ui, the optional model server),
# which are published nowhere else: `make images REGISTRY=$(terraform -chdir=terraform output -raw
# image_registry)` builds and pushes them here, and the chart pulls them with
# --set global.image.registry=<the same value>. ECR rather than images copied onto each node: a
# replaced or added node pulls by itself, and the nodes' instance profiles grant the pull, so no
# registry password lives in the cluster. What is still missing on the nodes (README "On AWS"): the
# kubelet must fetch ECR tokens through the kubelet credential provider (cloud-provider-aws's
# ecr-credential-provider binary, a CredentialProviderConfig matching *.dkr.ecr.*.amazonaws.com, and
# the kubelet flags --image-credential-provider-config/--image-credential-provider-bin-dir); until
# the node bootstrap installs it, push to a registry the nodes can pull from without it.
# (Issue 14: a file of its own so the rest of terraform/ stays as it is.)

locals {
  platform_images = toset(["chat-api", "chat-ui", "model-server"])
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

# Pull only, and only these repositories (GetAuthorizationToken has no resource scope).
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
  for_each = local.node_roles

  name   = "ecr-pull-platform-images"
  role   = aws_iam_role.node[each.key].id
  policy = data.aws_iam_policy_document.ecr_pull.json
}

output "image_registry" {
  description = "Where make images pushes and global.image.registry points: <account>.dkr.ecr.<region>.amazonaws.com/<cluster>."
  value       = "${data.aws_caller_identity.current.account_id}.dkr.ecr.${var.region}.amazonaws.com/${var.cluster_name}"
}
