# VPC endpoints keep image pulls, logs, parameters and queue traffic inside AWS
# instead of going through the NAT gateways.

resource "aws_vpc_endpoint" "interface" {
  for_each            = toset(var.interface_endpoints)
  vpc_id              = aws_vpc.main.id
  service_name        = "com.amazonaws.${local.region}.${each.value}"
  vpc_endpoint_type   = "Interface"
  private_dns_enabled = true
  subnet_ids          = aws_subnet.private[*].id
  security_group_ids  = [aws_security_group.endpoints.id]

  tags = { Name = "${var.name}-${each.value}" }
}

resource "aws_vpc_endpoint" "gateway" {
  for_each          = toset(["s3", "dynamodb"])
  vpc_id            = aws_vpc.main.id
  service_name      = "com.amazonaws.${local.region}.${each.value}"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = aws_route_table.private[*].id

  tags = { Name = "${var.name}-${each.value}" }
}

# EC2 Instance Connect endpoint: SSH to the ECS hosts, which have no public IPs,
# authorised by IAM (ec2-instance-connect:OpenTunnel) and logged in CloudTrail.
resource "aws_ec2_instance_connect_endpoint" "main" {
  subnet_id          = aws_subnet.private[0].id
  security_group_ids = [aws_security_group.instance_connect.id]
  preserve_client_ip = false

  tags = { Name = "${var.name}-instance-connect" }
}
