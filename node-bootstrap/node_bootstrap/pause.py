"""`make pause` / `make resume`: stop every instance of the cluster overnight, start them again.

What survives a stop/start (issue 13's fixes make it possible): the EBS root volumes (etcd, the
kubelet's and containerd's state, the images already pulled, chat-api's Redis on the edge worker),
the instance ids (so the host keys cached per instance id stay valid), the private addresses (the
cluster's own addresses: kubeadm, Calico and the API certificate use them) and the Elastic IPs of the
control plane (./kubeconfig keeps working) and the edge worker (the UI's address and certificate).
What does not: the GPU node's NVMe instance store, where the model cache lives, is blank after every
stop/start (AWS erases instance store on stop); the boot unit formats it again before the kubelet
starts, so vLLM downloads the 6.4 GB of weights again and recompiles (about 5-10 minutes). The other
nodes' public addresses change (only SSH uses them; the bootstrap refreshes them).

A stopped instance bills nothing for compute; its EBS volumes and Elastic IPs still bill (cost.py).
A one-time spot GPU node (gpu_spot = true) cannot be stopped at all (EC2 refuses: only persistent
spot requests can stop): pause refuses before stopping anything and says to destroy instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import PreflightError
from .leftovers import GONE_INSTANCE_STATES, _filters

SURVIVES = (
    "kept: the cluster (etcd, certificates, every node's root volume, pulled images, chat-api's Redis on "
    "the edge worker), instance ids and host keys, private addresses, the Elastic IPs of the control plane "
    "(./kubeconfig) and of the edge (the UI's address and certificate)"
)
LOST = (
    "lost: the GPU node's NVMe instance store, i.e. the model cache: vLLM downloads the weights again "
    "(6.4 GB) and recompiles on resume, about 5-10 minutes; the other nodes' public addresses change"
)


def cluster_instances(ec2: Any, cluster: str) -> list[dict[str, Any]]:
    found = [
        instance
        for reservation in ec2.describe_instances(Filters=_filters(cluster))["Reservations"]
        for instance in reservation["Instances"]
        if instance["State"]["Name"] not in GONE_INSTANCE_STATES
    ]
    return sorted(found, key=lambda i: i["InstanceId"])


def _name(instance: dict[str, Any]) -> str:
    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
    return f"{tags.get('Name', '?')} ({instance['InstanceId']}, {instance['InstanceType']})"


def pause(ec2: Any, cluster: str, say: Callable[[str], None], delay_s: int = 5) -> list[str]:
    instances = cluster_instances(ec2, cluster)
    if not instances:
        raise PreflightError(
            f"no instance of cluster {cluster!r} exists to pause. Fix: make platform (or make cluster)"
        )
    spot = [i for i in instances if i.get("InstanceLifecycle") == "spot"]
    if spot:
        raise PreflightError(
            f"{', '.join(_name(i) for i in spot)} is a one-time spot instance, which EC2 cannot stop (only "
            "terminate); nothing was stopped. Fix: make destroy to stop the bill, or gpu_spot = false in "
            "terraform/terraform.tfvars and make cluster for a GPU node that can pause"
        )
    running = [i["InstanceId"] for i in instances if i["State"]["Name"] in ("running", "pending")]
    for instance in instances:
        say(
            f"  {_name(instance)}: {instance['State']['Name']}"
            + (" -> stopping" if instance["InstanceId"] in running else "")
        )
    if running:
        ec2.stop_instances(InstanceIds=running)
        ec2.get_waiter("instance_stopped").wait(
            InstanceIds=running, WaiterConfig={"Delay": delay_s, "MaxAttempts": 600 // delay_s}
        )
    say(f"paused: {len(instances)} instances stopped")
    say(SURVIVES)
    say(LOST)
    say("still billed while paused: the EBS volumes and the Elastic IPs (about $0.035/hour at the defaults)")
    return running


def resume(ec2: Any, cluster: str, say: Callable[[str], None], delay_s: int = 5) -> list[str]:
    instances = cluster_instances(ec2, cluster)
    if not instances:
        raise PreflightError(f"no instance of cluster {cluster!r} exists to resume. Fix: make platform")
    stopped = [i["InstanceId"] for i in instances if i["State"]["Name"] in ("stopped", "stopping")]
    for instance in instances:
        say(
            f"  {_name(instance)}: {instance['State']['Name']}"
            + (" -> starting" if instance["InstanceId"] in stopped else "")
        )
    if stopped:
        # A stopping instance cannot be started until it has stopped.
        ec2.get_waiter("instance_stopped").wait(
            InstanceIds=stopped, WaiterConfig={"Delay": delay_s, "MaxAttempts": 600 // delay_s}
        )
        ec2.start_instances(InstanceIds=stopped)
    ids = [i["InstanceId"] for i in instances]
    ec2.get_waiter("instance_running").wait(
        InstanceIds=ids, WaiterConfig={"Delay": delay_s, "MaxAttempts": 600 // delay_s}
    )
    say(f"resumed: {len(ids)} instances running")
    return stopped
