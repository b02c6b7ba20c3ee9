# The nectr build machine image: Amazon Linux 2023 (x86_64, for C5) with Docker, git,
# Ruby and Rake, a Java runtime for the JVM helper, the static nectr-agent and
# nectr-agent-push, and the units that bring the agent up at boot (ami/README.md).
#
#   packer init ami/ && packer build -var region=us-east-1 ami/
#
# The binaries come from `cargo build --release --target x86_64-unknown-linux-musl -p
# nectr-agent -p nectr-push` (ami/Jenkinsfile does all of it and records the image id).

variable "region" {
  type        = string
  default     = "us-east-1"
  description = "Region the image is built and registered in."
}

variable "instance_type" {
  type        = string
  default     = "c5.large"
  description = "Instance type of the temporary build instance."
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet of the temporary build instance (empty: the default VPC)."
}

variable "agent_binary" {
  type        = string
  default     = "target/x86_64-unknown-linux-musl/release/nectr-agent"
  description = "The static nectr-agent binary to install."
}

variable "push_binary" {
  type        = string
  default     = "target/x86_64-unknown-linux-musl/release/nectr-agent-push"
  description = "The static nectr-agent-push binary to install beside it."
}

variable "image_name" {
  type        = string
  default     = "nectr-build-machine"
  description = "Name prefix of the image, and the value of its nectr:image tag."
}

variable "version" {
  type        = string
  default     = "dev"
  description = "What the image was built from (a git commit), recorded in its tags."
}

locals {
  stamp = formatdate("YYYYMMDD-hhmmss", timestamp())
}

source "amazon-ebs" "build_machine" {
  region          = var.region
  instance_type   = var.instance_type
  subnet_id       = var.subnet_id
  ssh_username    = "ec2-user"
  ami_name        = "${var.image_name}-${local.stamp}"
  ami_description = "nectr build machine (${var.version}): Amazon Linux 2023, nectr-agent, Docker, Ruby, Java"

  source_ami_filter {
    filters = {
      name                = "al2023-ami-2023.*-kernel-*-x86_64"
      architecture        = "x86_64"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    owners      = ["amazon"]
    most_recent = true
  }

  # IMDSv2 only: ami/Jenkinsfile marks the registered image with ImdsSupport=v2.0, so every
  # instance launched from it requires session tokens (a metadata_options block for the
  # temporary instance would need the plugin era's Packer; the CI check is Packer 1.6.6).

  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_size           = 30
    volume_type           = "gp3"
    iops                  = 3000
    throughput            = 125
    delete_on_termination = true
    encrypted             = true
  }

  # The fleet finds the newest image with nectr:image = <image_name> (fleet.toml:
  # ami = { tag = "nectr:image", value = "nectr-build-machine" }); ami/Jenkinsfile also
  # records the id in the SSM parameter /nectr/ami/<image_name>.
  tags = {
    Name          = "${var.image_name}-${local.stamp}"
    "nectr:image" = var.image_name
    "nectr:built" = local.stamp
    "nectr:from"  = var.version
  }
  run_tags = {
    Name = "packer ${var.image_name}"
  }
}

build {
  sources = ["source.amazon-ebs.build_machine"]

  provisioner "shell" {
    inline = ["mkdir -p /tmp/nectr/files"]
  }

  provisioner "file" {
    source      = var.agent_binary
    destination = "/tmp/nectr/nectr-agent"
  }

  provisioner "file" {
    source      = var.push_binary
    destination = "/tmp/nectr/nectr-agent-push"
  }

  provisioner "file" {
    source      = "${path.root}/../agent/dist/nectr-agent.service"
    destination = "/tmp/nectr/nectr-agent.service"
  }

  provisioner "file" {
    source      = "${path.root}/files/"
    destination = "/tmp/nectr/files"
  }

  provisioner "shell" {
    execute_command = "chmod +x {{ .Path }}; sudo sh -c '{{ .Vars }} {{ .Path }}'"
    script          = "${path.root}/provision/install.sh"
  }

  post-processor "manifest" {
    output     = "packer-manifest.json"
    strip_path = true
    custom_data = {
      image_name = var.image_name
      version    = var.version
    }
  }
}
