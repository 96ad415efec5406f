# Only the hashicorp/aws provider: the offline test mirror (/opt/tf-plugins) holds nothing else,
# so SSH keys, cloud-init and names are built from variables, not from tls/random/cloudinit.
terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # Remote state (recommended for a team): create the bucket and lock table once, then
  # uncomment this block and run `terraform init -migrate-state`. Local state is the default
  # so that a single user can start with nothing but credentials.
  #
  # backend "s3" {
  #   bucket         = "my-team-llama-platform-tfstate"   # versioned, encrypted, private
  #   key            = "llama-platform/terraform.tfstate"
  #   region         = "eu-west-1"
  #   dynamodb_table = "llama-platform-tflock"             # partition key "LockID" (string)
  #   encrypt        = true
  # }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      Project   = "llama-platform"
      Cluster   = var.cluster_name
      ManagedBy = "terraform"
    })
  }
}
