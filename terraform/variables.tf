variable "region" {
  type        = string
  description = "AWS region for every resource (no default region is assumed from the machine)."

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must look like eu-west-1 or us-east-1."
  }
}

variable "cluster_name" {
  type        = string
  description = "Name prefix for every resource and the Kubernetes cluster name."
  default     = "llama"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.cluster_name))
    error_message = "cluster_name must be 3-32 characters of lower-case letters, digits and '-', starting with a letter."
  }
}

variable "kubernetes_version" {
  type        = string
  description = "Kubernetes version the bootstrap installs (kubelet/kubeadm/kubectl pins and kubeadm's kubernetesVersion). 1.29 is past end of life: raise it when the platform is tested on a newer minor."
  default     = "v1.29.15"

  validation {
    condition     = can(regex("^v1\\.[0-9]+\\.[0-9]+$", var.kubernetes_version))
    error_message = "kubernetes_version must look like v1.29.15."
  }
}

variable "admin_cidrs" {
  type        = list(string)
  description = "IPv4 CIDRs allowed to reach SSH (22) and the Kubernetes API (6443): your own address as x.x.x.x/32 (or your office's range, /16 at the widest). No default on purpose: the world is never allowed in."

  validation {
    condition     = length(var.admin_cidrs) > 0 && alltrue([for c in var.admin_cidrs : can(cidrnetmask(c))])
    error_message = "admin_cidrs must hold at least one IPv4 CIDR, e.g. [\"203.0.113.7/32\"] (curl -s https://checkip.amazonaws.com). IPv6 is not supported: the security group rules are IPv4."
  }

  validation {
    # cidrnetmask fails on IPv6; cidrhost(c, 0) is the network address: equal to the given one only without host bits.
    condition     = alltrue([for c in var.admin_cidrs : !can(cidrnetmask(c)) || cidrhost(c, 0) == split("/", c)[0]])
    error_message = "admin_cidrs must be network addresses without host bits (203.0.113.0/24, not 203.0.113.7/24): a typo there opens more than you meant."
  }

  validation {
    condition     = alltrue([for c in var.admin_cidrs : !can(cidrnetmask(c)) || tonumber(split("/", c)[1]) >= 16])
    error_message = "admin_cidrs must not contain 0.0.0.0/0 or any range wider than /16 (0.0.0.0/1 is half the internet): SSH and the API server would be open to it. Use your own /32."
  }
}

variable "client_cidrs" {
  type        = list(string)
  description = "IPv4 CIDRs allowed to reach the chat UI and /v1 over HTTPS (port 443 of the edge worker); /8 at the widest. Empty keeps them closed to the outside. People still sign in: this is the outer fence, not the lock."
  default     = []

  validation {
    condition     = alltrue([for c in var.client_cidrs : can(cidrnetmask(c))])
    error_message = "client_cidrs must hold IPv4 CIDRs, e.g. [\"198.51.100.0/24\"]. IPv6 is not supported: the security group rules are IPv4."
  }

  validation {
    condition     = alltrue([for c in var.client_cidrs : !can(cidrnetmask(c)) || cidrhost(c, 0) == split("/", c)[0]])
    error_message = "client_cidrs must be network addresses without host bits (198.51.100.0/24, not 198.51.100.7/24)."
  }

  validation {
    # 0.0.0.0/0 and ::/0 by name (::/0 is also refused above as IPv6), then anything wider than /8.
    condition     = !anytrue([for c in var.client_cidrs : contains(["0.0.0.0/0", "::/0"], trimspace(c))])
    error_message = "client_cidrs must not contain 0.0.0.0/0 or ::/0: the chat UI and /v1 would face the whole internet. Name your users' networks (office ranges, your VPN's egress), e.g. [\"198.51.100.0/24\"]."
  }

  validation {
    condition     = alltrue([for c in var.client_cidrs : !can(cidrnetmask(c)) || tonumber(split("/", c)[1]) >= 8])
    error_message = "client_cidrs must not contain any range wider than /8 (0.0.0.0/1 is half the internet): name your users' networks."
  }
}

variable "acme_http01_from_anywhere" {
  type        = bool
  description = "Open port 80 of the nodes to the internet for Let's Encrypt's HTTP-01 check (it validates from addresses it does not publish). Port 80 answers only that challenge and a redirect to HTTPS. false: port 80 from client_cidrs only; then bring your own certificate (chat-ui.tls.existingSecret)."
  default     = true
}

variable "vpc_cidr" {
  type        = string
  description = "VPC CIDR. Must not overlap the pod network (192.168.0.0/16)."
  default     = "10.10.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && !startswith(var.vpc_cidr, "192.168.")
    error_message = "vpc_cidr must be a valid CIDR outside 192.168.0.0/16 (Calico's pod network)."
  }
}

variable "availability_zone_count" {
  type        = number
  description = "How many availability zones get a public subnet."
  default     = 3

  validation {
    condition     = var.availability_zone_count >= 1 && var.availability_zone_count <= 6
    error_message = "availability_zone_count must be between 1 and 6."
  }
}

variable "availability_zones" {
  type        = list(string)
  description = "Zones for the subnets, e.g. [\"eu-west-1a\", \"eu-west-1b\", \"eu-west-1c\"]. Empty: the region's first standard zones. Pin them when the GPU type is offered only in some zones."
  default     = []

  validation {
    condition     = alltrue([for z in var.availability_zones : can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9][a-z]$", z))])
    error_message = "availability_zones must be zone names such as eu-west-1a."
  }
}

variable "ssh_public_key" {
  type        = string
  description = "Your SSH public key (contents of ~/.ssh/id_ed25519.pub); the bootstrap connects with the matching private key."

  validation {
    condition     = can(regex("^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+", var.ssh_public_key))
    error_message = "ssh_public_key must be an OpenSSH public key line (ssh-ed25519 AAAA...), not a path or a private key."
  }
}

variable "ssh_user" {
  type        = string
  description = "Login user of the AMI (ubuntu on Canonical's images)."
  default     = "ubuntu"
}

variable "ami_id" {
  type        = string
  description = "Override the AMI. Empty: the newest Canonical Ubuntu 22.04 amd64 image is looked up."
  default     = ""

  validation {
    condition     = var.ami_id == "" || can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id must be empty or look like ami-0123456789abcdef0."
  }
}

variable "control_plane_instance_type" {
  type        = string
  description = "EC2 type of the control plane (kubeadm needs 2 vCPU, 2 GiB)."
  default     = "t3.medium"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.control_plane_instance_type))
    error_message = "control_plane_instance_type must be an EC2 instance type such as t3.medium."
  }
}

variable "worker_instance_type" {
  type        = string
  description = "EC2 type of the CPU workers (chat-api, UI, monitoring)."
  default     = "t3.medium"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.worker_instance_type))
    error_message = "worker_instance_type must be an EC2 instance type such as t3.medium."
  }
}

variable "worker_count" {
  type        = number
  description = "Number of CPU workers."
  default     = 1

  validation {
    condition     = var.worker_count >= 0 && var.worker_count <= 20
    error_message = "worker_count must be between 0 and 20."
  }
}

variable "gpu_instance_type" {
  type        = string
  description = "EC2 type of the GPU workers: g4dn.* (T4, values/aws-t4.yaml) or g5.* (A10G, values/aws-a10g.yaml)."
  default     = "g4dn.xlarge"

  validation {
    condition     = can(regex("^(g4dn|g5|g6|g6e|p3|p4d|p5)\\.[0-9]*x?large$", var.gpu_instance_type))
    error_message = "gpu_instance_type must be an NVIDIA GPU type such as g4dn.xlarge or g5.xlarge."
  }
}

variable "gpu_count" {
  type        = number
  description = "Number of GPU workers."
  default     = 1

  validation {
    condition     = var.gpu_count >= 0 && var.gpu_count <= 8
    error_message = "gpu_count must be between 0 and 8."
  }
}

variable "gpu_spot" {
  type        = bool
  description = "Run the GPU workers as one-time spot instances (cheaper; reclaimed with 2 minutes notice, then terminated: `make cluster` creates and joins a new one). Needs the separate 'All G and VT Spot Instance Requests' quota."
  default     = false
}

variable "gpu_spot_max_price" {
  type        = string
  description = "Highest hourly spot price in USD; empty means up to the on-demand price."
  default     = ""
}

variable "root_volume_gb" {
  type        = number
  description = "Root volume size of control plane and CPU workers in GiB."
  default     = 40

  validation {
    condition     = var.root_volume_gb >= 20
    error_message = "root_volume_gb must be at least 20 (kubeadm images and logs)."
  }
}

variable "gpu_root_volume_gb" {
  type        = number
  description = "Root volume size of GPU workers in GiB: the vLLM image is about 12 GB compressed and needs room to unpack twice."
  default     = 150

  validation {
    condition     = var.gpu_root_volume_gb >= 100
    error_message = "gpu_root_volume_gb must be at least 100: the vLLM CUDA image alone unpacks to about 30 GB."
  }
}

variable "detailed_monitoring" {
  type        = bool
  description = "EC2 detailed (1-minute) CloudWatch monitoring, about 2 USD per instance and month. Off by default: the cluster's own Prometheus covers the nodes; turn it on for the AWS console's 1-minute view."
  default     = false
}

variable "check_gpu_quota" {
  type        = bool
  description = "Read the account's G and VT vCPU quota (Service Quotas) and refuse to plan when the GPU workers would not fit, before anything is created. Needs servicequotas:GetServiceQuota; turn off only where that API is not available."
  default     = true
}

variable "model_cache_bucket" {
  type        = string
  description = "Optional S3 bucket holding model weights; GPU nodes get read-only access to it. Empty: no S3 access."
  default     = ""

  validation {
    condition     = var.model_cache_bucket == "" || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.model_cache_bucket))
    error_message = "model_cache_bucket must be empty or a valid S3 bucket name."
  }
}

variable "tags" {
  type        = map(string)
  description = "Extra tags on every resource (cost centre, owner, ...)."
  default     = {}
}
