data "aws_availability_zones" "available" {
  state = "available"

  # An allowlist of zone names: the pinned zones, or the region's standard zones (<region>a to
  # <region>f), which keeps Local and Wavelength Zones (other instance types, other prices) out.
  filter {
    name   = "zone-name"
    values = length(var.availability_zones) > 0 ? var.availability_zones : [for letter in ["a", "b", "c", "d", "e", "f"] : "${var.region}${letter}"]
  }
}

locals {
  azs = slice(sort(data.aws_availability_zones.available.names), 0, min(var.availability_zone_count, length(data.aws_availability_zones.available.names)))
}

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = { Name = "${var.cluster_name}-vpc" }
}

# The VPC's default security group is created by AWS with allow-all egress and self ingress;
# managing it with no rules closes it, so nothing can silently fall back to it.
resource "aws_default_security_group" "closed" {
  vpc_id = aws_vpc.this.id

  tags = { Name = "${var.cluster_name}-default-closed" }
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id

  tags = { Name = "${var.cluster_name}-igw" }
}

# Public subnets only: the nodes need outbound internet (apt, images, Hugging Face) and there is
# no NAT gateway to pay for. Inbound is what the security group allows, nothing else.
resource "aws_subnet" "public" {
  count = length(local.azs)

  vpc_id            = aws_vpc.this.id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 8, count.index)
  # Addresses are attached explicitly per instance (associate_public_ip_address), not by default.
  map_public_ip_on_launch = false

  tags = { Name = "${var.cluster_name}-public-${local.azs[count.index]}" }
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id

  tags = { Name = "${var.cluster_name}-public" }
}

resource "aws_route" "internet" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  count = length(aws_subnet.public)

  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}
