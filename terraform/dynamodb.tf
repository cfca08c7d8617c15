# Scale-out mode's state store: one table per kind of record, named
# <name>-<table> (the service's EASYDEPLOY_STATE_URL is dynamodb://<name>).
# Conditional writes on these give the per-app deploy lock.

resource "aws_dynamodb_table" "state" {
  for_each     = toset(var.state_tables)
  name         = "${var.name}-${each.value}"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"
  range_key    = "sk"

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.platform.arn
  }

  deletion_protection_enabled = true
}
