"""`python -m sip_gateway` as a process: it serves SIP2 on its port and `/metrics` and `/health/live`
on its metrics port, and stops on SIGTERM. (No kiosk logs in here: the accounts' database is the
in-process tests' business.)"""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request

from tests.processes import ROOT
from tests.sip_gateway.client import SipClient
from tools.harness.processes import PYTHON, answers, free_port, wait_until


def test_the_gateway_process_serves_kiosks_and_metrics_and_stops_on_sigterm():
    sip_port, metrics_port = free_port(), free_port()
    command = [PYTHON, "-m", "sip_gateway", "--port", str(sip_port), "--metrics-port", str(metrics_port)]
    env = {**os.environ, "LENDING_API_URL": "http://127.0.0.1:9", "LOG_FORMAT": "json"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: answers(f"http://127.0.0.1:{metrics_port}/health/live", ok_only=True))
        with SipClient(sip_port) as kiosk:
            status = kiosk.ask("9900302.00")
            assert status.code == "98" and status.field("BX") == "YYYNYYYYYNYNNNYN"
            assert kiosk.ask(f"23000{' ' * 18}AOx|AA2100000001|").field("AF") == "This kiosk is not logged in."
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as scrape:
            exposition = scrape.read().decode()
        assert 'sip_messages_total{message="99"} 1.0' in exposition and "sip_sessions_open" in exposition
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = process.stdout.read().decode() if process.stdout else ""
    assert '"sip_gateway_stopped"' in output
