"""The reference client for `make bench`: the wechatpayv3 package (PyPI) making the same signed,
verified POST /v3/offlineface/authinfo call to the same loopback gateway as authinfod.

usage: wechatpayv3-client.py BASE_URL MERCHANT_KEY_PEM PUBLIC_KEY_PEM PUBLIC_KEY_ID CALLS
Prints the CPU seconds this process spent per call (user + system), after a warm-up.
"""
import json
import resource
import sys

from wechatpayv3.core import Core
from wechatpayv3.type import RequestType


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main():
    base_url, key_file, public_key_file, public_key_id, calls = sys.argv[1:6]
    core = Core(mchid="1900000109", cert_serial_no="5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
                private_key=open(key_file).read(), apiv3_key="0" * 32,
                public_key=open(public_key_file).read(), public_key_id=public_key_id, timeout=5)
    core._gate_way = base_url
    body = {"sp_appid": "wx8888888888888888", "sub_mchid": "1900000999", "device_id": "bench-1",
            "raw_data": "R" * 512, "organization_id": "org-1"}

    def call():
        status, text = core.request("/v3/offlineface/authinfo", method=RequestType.POST, data=body)
        if status != 200 or "authinfo" not in json.loads(text):
            raise SystemExit(f"wechatpayv3 call failed: {status} {text}")

    for _ in range(20):
        call()
    start = cpu_seconds()
    for _ in range(int(calls)):
        call()
    print(f"{(cpu_seconds() - start) / int(calls):.6f}")


if __name__ == "__main__":
    main()
