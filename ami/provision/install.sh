#!/bin/sh
# Provisions the nectr build machine image (run by Packer as root on Amazon Linux 2023,
# x86_64). Packer has uploaded to /tmp/nectr: the static nectr-agent and nectr-agent-push
# binaries, agent/dist/nectr-agent.service, and ami/files.
set -eu
src=/tmp/nectr
say() { printf '==> %s\n' "$*"; }

say "packages: Docker, git, Ruby and Rake, a Java runtime (the JVM helper), mdadm, the AWS CLI"
dnf -y -q upgrade --refresh
dnf -y -q install docker git ruby rubygem-rake java-17-amazon-corretto-headless \
  mdadm e2fsprogs tar gzip unzip awscli-2 curl-minimal
systemctl enable docker.service

say "the jenkins user (builds run as it; it may use Docker)"
if ! id jenkins >/dev/null 2>&1; then
  useradd --system --create-home --home-dir /home/jenkins --shell /bin/bash jenkins
fi
usermod -aG docker jenkins

say "nectr-agent, nectr-agent-push (push / fetch) and the boot script"
install -m 0755 "$src/nectr-agent" /usr/local/bin/nectr-agent
install -m 0755 "$src/nectr-agent-push" /usr/local/bin/nectr-agent-push
install -m 0755 "$src/files/nectr-boot" /usr/local/sbin/nectr-boot
install -m 0755 "$src/files/nectr-spot-watch" /usr/local/sbin/nectr-spot-watch
/usr/local/bin/nectr-agent -version
/usr/local/bin/nectr-agent push --version

say "systemd units: nectr-boot at every boot, which starts nectr-agent"
install -m 0644 "$src/nectr-agent.service" /etc/systemd/system/nectr-agent.service
install -d -m 0755 /etc/systemd/system/nectr-agent.service.d
install -m 0644 "$src/files/nectr-agent.service.d/build-machine.conf" \
  /etc/systemd/system/nectr-agent.service.d/build-machine.conf
install -m 0644 "$src/files/nectr-boot.service" /etc/systemd/system/nectr-boot.service
install -m 0644 "$src/files/nectr-spot-watch.service" /etc/systemd/system/nectr-spot-watch.service
install -d -m 0755 /etc/nectr-agent
systemctl daemon-reload
systemctl enable nectr-boot.service
# Reports spot interruption notices and rebalance recommendations as instance tags.
systemctl enable nectr-spot-watch.service
# nectr-agent.service is started by nectr-boot, never on its own.
systemctl disable nectr-agent.service 2>/dev/null || true

say "clean-up: no per-instance state in the image"
rm -rf "$src"
rm -f /etc/nectr-agent/secret /etc/nectr-agent/agent.env
dnf -y -q clean all
cloud-init clean --logs --seed
rm -f /etc/ssh/ssh_host_* /root/.bash_history /home/*/.bash_history
truncate -s 0 /etc/machine-id
