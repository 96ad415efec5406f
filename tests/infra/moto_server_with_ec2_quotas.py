"""moto server that also answers Service Quotas for EC2's G and VT vCPU quotas, and gives each
instance its own console output.

moto (the pinned version) implements Service Quotas only for `vpc` and answers any EC2 quota
code with NoSuchResourceException, which a real account never does. This wrapper answers the
EC2 codes (GetServiceQuota and GetAWSDefaultServiceQuota) from the JSON file named by
MOTO_EC2_QUOTAS_FILE ({"L-DB2E81BA": 4, ...}), read at
each call so a test can change the account's quota. GetConsoleOutput answers, for an instance,
the text of MOTO_CONSOLE_DIR/<instance id>.txt when that file exists (what cloud-init printed on
its first boot, written by the test when the "instance" has booted), else moto's own sample text
(a console without host keys: before cloud-init got there, or after a stop/start, since
`Latest=True` output no longer holds them); each read is appended to MOTO_CONSOLE_DIR/reads.log
(one JSON line: the instance id and whether the answer held host keys), so a test can see that
a poller really waited. With MOTO_PUBLIC_IP_RANGE (a CIDR), the public addresses of instances
and Elastic IPs are drawn from that range, at random and never twice, instead of moto's
54.214.x.x and 127.x.x.x: the sandbox hosts (sandbox.py) can then take exactly the addresses
EC2 "gave" them on the lab's internet bridge. Otherwise it behaves as moto's own server:
`python moto_server_with_ec2_quotas.py -H 127.0.0.1 -p PORT`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ec2.models import elastic_ip_addresses, elastic_network_interfaces
from moto.ec2.responses.general import General
from moto.ec2.utils import Base64EncodedString
from moto.server import main
from moto.servicequotas.models import ServiceQuotasBackend
from moto.servicequotas.responses import ServiceQuotasResponse

# The shape AWS returns (service-quotas GetServiceQuota), as moto's own vpc entries have it.
_NAMES = {
    "L-DB2E81BA": "Running On-Demand G and VT instances",
    "L-3819A6DF": "All G and VT Spot Instance Requests",
}
_moto_get = ServiceQuotasBackend.get_service_quota


def get_service_quota(self: ServiceQuotasBackend, service_code: str, quota_code: str) -> dict[str, Any]:
    quotas_file = os.environ.get("MOTO_EC2_QUOTAS_FILE")
    if service_code == "ec2" and quota_code in _NAMES and quotas_file:
        quotas = json.loads(Path(quotas_file).read_text())
        if quota_code in quotas:
            return {
                "ServiceCode": "ec2",
                "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)",
                "QuotaArn": f"arn:aws:servicequotas:{self.region_name}:{self.account_id}:ec2/{quota_code}",
                "QuotaCode": quota_code,
                "QuotaName": _NAMES[quota_code],
                "Value": float(quotas[quota_code]),
                "Unit": "None",
                "Adjustable": True,
                "GlobalQuota": False,
            }
    return _moto_get(self, service_code, quota_code)


def get_aws_default_service_quota_response(self: ServiceQuotasResponse) -> str:
    """GetAWSDefaultServiceQuota, which the AWS provider's aws_servicequotas_service_quota data
    source also reads (moto has no handler: NotImplemented, and the provider retries for ever).
    The default of a new account for these codes: the same file's value."""
    params = json.loads(self.body)
    quota = get_service_quota(self.backend, str(params.get("ServiceCode")), str(params.get("QuotaCode")))
    return json.dumps({"Quota": quota})


_moto_console = General.get_console_output


def get_console_output(self: General) -> ActionResult:
    instance_id = self._get_param("InstanceId")
    consoles = Path(os.environ.get("MOTO_CONSOLE_DIR", "/nonexistent"))
    console = consoles / f"{instance_id}.txt"
    text = console.read_text() if console.is_file() else ""
    if consoles.is_dir():
        with (consoles / "reads.log").open("a") as reads:
            read = {"instance": instance_id, "host_keys": "SSH HOST KEY KEYS" in text}
            reads.write(json.dumps(read) + "\n")
    if not text:
        return _moto_console(self)
    instance = self.ec2_backend.get_instance(instance_id)  # an unknown id fails as in moto
    return ActionResult(
        {
            "InstanceId": instance.id,
            "Timestamp": utcnow(),
            "Output": Base64EncodedString.from_raw_string(text),
        }
    )


_handed_out: set[str] = set()


def public_ip_from_range() -> str:
    """A public address from MOTO_PUBLIC_IP_RANGE not handed out before by this server."""
    network = ipaddress.ip_network(os.environ["MOTO_PUBLIC_IP_RANGE"])
    free = [str(a) for a in network.hosts() if str(a) not in _handed_out]
    if not free:
        raise RuntimeError(f"MOTO_PUBLIC_IP_RANGE {network} has no address left")
    address = random.choice(free)
    _handed_out.add(address)
    return address


if os.environ.get("MOTO_PUBLIC_IP_RANGE"):
    elastic_network_interfaces.random_public_ip = public_ip_from_range  # type: ignore[attr-defined]
    elastic_ip_addresses.random_ip = public_ip_from_range  # type: ignore[attr-defined]


General.get_console_output = get_console_output  # type: ignore[method-assign]
ServiceQuotasBackend.get_service_quota = get_service_quota  # type: ignore[method-assign]
ServiceQuotasResponse.get_aws_default_service_quota = get_aws_default_service_quota_response  # type: ignore[attr-defined]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
