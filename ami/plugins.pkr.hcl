# The Amazon builder is an external plugin since Packer 1.7: `packer init ami/` installs it.
# This block is in its own file because Debian's packer 1.6.6 (the CI check) predates
# required_plugins and refuses it; CI validates build-machine.pkr.hcl alone.
packer {
  required_version = ">= 1.7.0"
  required_plugins {
    amazon = {
      version = ">= 1.3.0"
      source  = "github.com/hashicorp/amazon"
    }
  }
}
