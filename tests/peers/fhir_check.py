"""Reads Ferry's FHIR answers with the PyPI `fhir.resources` models (R4B, which for
ServiceRequest, DiagnosticReport and Bundle is R4 as hospital systems use it): every resource
must validate. Prints one JSON document of what the models read; the Rust test
(tests/it/reading.rs) asserts on it.

    python3 fhir_check.py URL TOKEN
"""
import json
import sys
import urllib.request

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.servicerequest import ServiceRequest

url, token = sys.argv[1], sys.argv[2]


def get(path):
    req = urllib.request.Request(url + path, headers={"Authorization": "Bearer " + token,
                                                      "Accept": "application/fhir+json"})
    with urllib.request.urlopen(req) as r:
        assert r.headers["Content-Type"].startswith("application/fhir+json"), r.headers["Content-Type"]
        return r.read()


out = {}
requests = Bundle.model_validate_json(get("/fhir/ServiceRequest"))
out["requests"] = []
for e in requests.entry or []:
    sr = ServiceRequest.model_validate(e.resource.model_dump())
    out["requests"].append({"id": sr.id, "status": sr.status, "priority": sr.priority,
                            "intent": sr.intent, "subject": sr.subject.identifier.value,
                            "full_url": e.fullUrl})
reports = Bundle.model_validate_json(get("/fhir/DiagnosticReport"))
out["reports"] = []
for e in reports.entry or []:
    dr = DiagnosticReport.model_validate(e.resource.model_dump())
    out["reports"].append({"id": dr.id, "status": dr.status, "conclusion": dr.conclusion,
                           "based_on": dr.basedOn[0].reference})
if out["requests"]:
    one = ServiceRequest.model_validate_json(get("/fhir/ServiceRequest/" + out["requests"][0]["id"]))
    out["read"] = one.id
if out["reports"]:
    one = DiagnosticReport.model_validate_json(get("/fhir/DiagnosticReport/" + out["reports"][0]["id"]))
    out["read_report"] = one.id
print(json.dumps(out, ensure_ascii=False))
