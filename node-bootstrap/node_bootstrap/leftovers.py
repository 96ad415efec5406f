"""After `make destroy`: ask AWS itself whether anything of the cluster still exists (and bills).

Terraform only knows what its state knows. A spot request that outlived its instance, a volume a
failed apply created after the state was written, or an Elastic IP allocated by hand with the
cluster's tags would keep billing unseen; every resource terraform creates carries the provider's
default tags (`Project = llama-platform`, `Cluster = <cluster_name>`, terraform/versions.tf), so
this looks for those tags.
"""

from __future__ import annotations

from typing import Any

GONE_INSTANCE_STATES = {"terminated", "shutting-down"}
LIVE_SPOT_STATES = {"open", "active"}


def _filters(cluster: str) -> list[dict[str, Any]]:
    return [
        {"Name": "tag:Project", "Values": ["llama-platform"]},
        {"Name": "tag:Cluster", "Values": [cluster]},
    ]


def find(ec2: Any, cluster: str) -> list[str]:
    """'kind id' for every instance, volume, address, spot request or VPC of the cluster still there."""
    filters = _filters(cluster)
    left = [
        f"instance {i['InstanceId']} ({i['State']['Name']})"
        for r in ec2.describe_instances(Filters=filters)["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] not in GONE_INSTANCE_STATES
    ]
    left += [
        f"volume {v['VolumeId']} ({v['Size']} GB)" for v in ec2.describe_volumes(Filters=filters)["Volumes"]
    ]
    left += [
        f"address {a['PublicIp']} ({a.get('AllocationId', '')})"
        for a in ec2.describe_addresses(Filters=filters)["Addresses"]
    ]
    left += [
        f"spot request {s['SpotInstanceRequestId']} ({s['State']})"
        for s in ec2.describe_spot_instance_requests(Filters=filters)["SpotInstanceRequests"]
        if s["State"] in LIVE_SPOT_STATES
    ]
    left += [f"vpc {v['VpcId']}" for v in ec2.describe_vpcs(Filters=filters)["Vpcs"]]
    return left
