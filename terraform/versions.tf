terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60.0, < 6.0.0"
    }
  }
}

provider "aws" {
  region = var.aws_region

  # Every resource the platform itself creates is tagged; the resources the
  # pipeline creates per tenant carry the easydeploy:* tags instead.
  default_tags {
    tags = merge(var.tags, {
      "easydeploy:platform" = var.name
      "managed-by"          = "terraform"
    })
  }
}
