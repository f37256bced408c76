# Lease table of the benthos-kinesis aws_kinesis input: the table its dynamodb.create makes
# (hash key StreamID, range key ShardID, both strings; no index, stream, TTL or other setting).
# See resources/table/README.md.

terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 4.0"
    }
  }
}

variable "table_name" {
  type        = string
  description = "The input's dynamodb.table."
}

variable "billing_mode" {
  type        = string
  description = "PAY_PER_REQUEST (on-demand, what dynamodb.create uses by default) or PROVISIONED."
  default     = "PAY_PER_REQUEST"
  validation {
    condition     = contains(["PAY_PER_REQUEST", "PROVISIONED"], var.billing_mode)
    error_message = "billing_mode must be PAY_PER_REQUEST or PROVISIONED."
  }
}

variable "read_capacity" {
  type        = number
  description = "With PROVISIONED only (the input's dynamodb.read_capacity_units). See docs/AWS.md for the rate a fleet reads at."
  default     = 1
}

variable "write_capacity" {
  type        = number
  description = "With PROVISIONED only (the input's dynamodb.write_capacity_units)."
  default     = 1
}

resource "aws_dynamodb_table" "lease" {
  name           = var.table_name
  billing_mode   = var.billing_mode
  read_capacity  = var.billing_mode == "PROVISIONED" ? var.read_capacity : null
  write_capacity = var.billing_mode == "PROVISIONED" ? var.write_capacity : null
  hash_key       = "StreamID"
  range_key      = "ShardID"

  attribute {
    name = "StreamID"
    type = "S"
  }

  attribute {
    name = "ShardID"
    type = "S"
  }
}

output "table_name" {
  description = "The table name, for the input's dynamodb.table."
  value       = aws_dynamodb_table.lease.name
}

output "table_arn" {
  description = "The table ARN, for the Resource of the IAM policies in resources/iam."
  value       = aws_dynamodb_table.lease.arn
}
