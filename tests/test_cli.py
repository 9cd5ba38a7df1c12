"""The command line: `alchemist doctor` reports the sandbox's isolation layers as the sandbox sees them."""
import json

from alchemist_magics.cli import main
from alchemist_magics.programs import describe_isolation, isolation_report


def test_doctor_prints_the_isolation_line(capsys):
    assert main(["doctor"]) == 0
    line = capsys.readouterr().out.strip()
    assert line == describe_isolation()
    assert line.startswith("sandbox isolation: ") and isolation_report()["isolation"] in line


def test_doctor_json_is_the_report(capsys):
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == isolation_report()
    assert report["isolation"] in ("os", "audit-hook only")
    assert set(report) >= {"seccomp", "landlock", "user_ns", "pid_ns", "net_ns", "problems"}
