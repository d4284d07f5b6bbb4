"""Call one of the cube-pick nodes' services from a shell that has no ros2cli (pip-installed ROS 2):

    python -m real.call recorder/start            # std_srvs/Trigger
    python -m real.call recorder/stop true        # std_srvs/SetBool: the demo was a success
    python -m real.call recorder/discard
    python -m real.call franka/estop | franka/reset | franka/home
    python -m real.call franka/guiding true|false
    python -m real.call policy/enable true|false

With ros2cli the same is `ros2 service call /recorder/stop std_srvs/srv/SetBool "{data: true}"`.
Prints the node's answer; a missing service, no answer or a refusal is one line and exit 1.
"""
from __future__ import annotations

import argparse
import sys

from real.services import ServiceCaller, ServiceError

BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m real.call", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("service", help="<node>/<service>, e.g. recorder/start")
    parser.add_argument("value", nargs="?", choices=sorted(BOOLS), help="SetBool services: true or false")
    parser.add_argument("--timeout-s", type=float, default=5.0, help="wait this long for the service (and its answer)")
    args = parser.parse_args(argv)
    caller = None
    try:
        caller = ServiceCaller("call", args.timeout_s)
        with_bool = args.value is not None
        client = caller.client(args.service, with_bool, "is the node running, in this ROS_DOMAIN_ID?")
        # homing can take long: the node answers once the arm is there
        timeout = max(args.timeout_s, 120.0) if args.service.endswith("/home") else args.timeout_s
        print(caller.call(client, BOOLS[args.value] if with_bool else None, timeout) or "ok")
        return 0
    except ServiceError as e:
        print(f"call: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if caller is not None:
            caller.close()


if __name__ == "__main__":
    raise SystemExit(main())
