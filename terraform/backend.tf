# Remote state: S3 (versioned, encrypted) with a DynamoDB lock table.
#
# This is a partial configuration: the bucket, lock table, key and region differ
# per account and are passed at init time, e.g.
#
#   terraform init -backend-config=backend.hcl
#
# with backend.hcl written from backend.hcl.example. Create the bucket and the
# table once with the bootstrap/ module (see README.md).
terraform {
  backend "s3" {
    encrypt = true
  }
}
