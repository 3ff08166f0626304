"""An agent's loop on claw-approvals, standard library only: submit, wait, claim, redeem, report.

Environment: CLAW_URL, CLAW_AGENT_KEY, CLAW_CHANNEL_ID, CLAW_REQUESTER_ID, and CLAW_GATEWAY_URL,
the gateway each step's call goes through (given the claim's run_id and event_hash_b64u, it
answers the receipt it signed for the call).
"""
import json, os, sys, urllib.error, urllib.request

URL, KEY, GATEWAY = os.environ["CLAW_URL"], os.environ["CLAW_AGENT_KEY"], os.environ["CLAW_GATEWAY_URL"]


def post_json(url, body=None, key=None):
    headers = {"content-type": "application/json", **({"authorization": f"Bearer {key}"} if key else {})}
    req = urllib.request.Request(url, None if body is None else json.dumps(body).encode(), headers)
    try:
        with urllib.request.urlopen(req, timeout=45) as res:
            return json.load(res)
    except urllib.error.HTTPError as err:  # the API answers {"error": {"code", "message"}}
        sys.exit(f"{url.split('?')[0]}: HTTP {err.code} {json.load(err)['error']['code']}")


api = lambda path, body=None: post_json(URL + path, body, KEY)  # GET without a body, POST with one
job = api("/v1/jobs", {"channel_id": os.environ["CLAW_CHANNEL_ID"], "requester_id": os.environ["CLAW_REQUESTER_ID"],
                       "runbook": {"name": "service-context", "params": {"service": "payments-api",
                       "query": "p99 latency since 09:00", "notify_channel": "payments-oncall"}}})
print(f"{job['id']}: waiting for approval in Mattermost", flush=True)
for sid in [s["id"] for s in job["steps"]]:
    step = lambda: next(s for s in job["steps"] if s["id"] == sid)
    while step()["status"] == "awaiting_approval" and job["status"] == "open":  # long-poll, 30 s at a time
        job = api(f"/v1/jobs/{job['job_id']}?wait=30&after={job['version']}")
    if step()["status"] != "approved":
        sys.exit(f"{sid}: {step()['status']} ({job['end_reason']})")
    claim = api(f"/v1/jobs/{job['job_id']}/steps/{sid}/token", {})
    api("/v1/tokens/redeem", {"token": claim["token"], "audience": "clawproxy"})
    receipt = post_json(GATEWAY, {"run_id": claim["run_id"], "event_hash_b64u": claim["event_hash_b64u"]})
    result = api(f"/v1/jobs/{job['job_id']}/steps/{sid}/result", {"status": "succeeded", "receipts": [receipt]})
    print(f"{sid}: {result['status']}, job {result['job_status']}", flush=True)
sys.exit(0 if result["job_status"] == "completed" else f"job {result['job_status']}")
