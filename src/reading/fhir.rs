//! Reading requests as FHIR R4 `ServiceRequest`s and their signed reports as
//! `DiagnosticReport`s (JSON), for hospital systems. Pure: a request, its study facts and its
//! reports in, resources out. FHIR ids allow `[A-Za-z0-9.-]`, so a request's `_` becomes `.`
//! (Ferry's ids never contain `.`).

use serde_json::{Value, json};

use super::store::Report;
use super::{Kind, Priority, Request, State};

/// The FHIR id of a request (and of its report: the same id).
pub fn fhir_id(id: &str) -> String {
    id.replace('_', ".")
}

/// The request id of a FHIR id.
pub fn request_id(fhir: &str) -> String {
    fhir.replace('.', "_")
}

fn instant(ms: i64) -> String {
    crate::time::rfc3339(ms)
}

fn subject(study: &Value) -> Value {
    let id = study["patient_id"].as_str().unwrap_or("");
    let name = study["patient_name"].as_str().unwrap_or("");
    let display = name.split('=').next().unwrap_or("").replace('^', " ").trim().to_string();
    let mut s = json!({ "identifier": { "system": "urn:ferry:patient-id", "value": id } });
    if !display.is_empty() {
        s["display"] = json!(display);
    }
    s
}

fn category(kind: Kind) -> Value {
    match kind {
        Kind::Imaging => {
            json!([{ "coding": [{ "system": "http://snomed.info/sct", "code": "363679005", "display": "Imaging" }] }])
        }
        Kind::Ecg => {
            json!([{ "coding": [{ "system": "http://snomed.info/sct", "code": "29303009", "display": "Electrocardiographic procedure" }] }])
        }
    }
}

fn identifier(r: &Request) -> Value {
    json!([{ "system": "urn:ferry:reading", "value": r.id }])
}

fn site(id: &crate::network::SiteId) -> Value {
    json!({ "identifier": { "system": "urn:ferry:site", "value": id.to_string() } })
}

/// A request as a `ServiceRequest`.
pub fn service_request(r: &Request, study: &Value) -> Value {
    let status = match r.state {
        State::Collecting | State::Ready | State::Claimed | State::Review => "active",
        State::Signed => "completed",
        State::Cancelled => "revoked",
    };
    let priority = match r.priority {
        Priority::Stat => "stat",
        Priority::Urgent => "urgent",
        Priority::Routine => "routine",
    };
    let code = match (r.kind, r.modality.as_deref()) {
        (Kind::Ecg, _) => {
            json!({ "coding": [{ "system": "http://loinc.org", "code": "11524-6", "display": "EKG study" }], "text": "ECG" })
        }
        (Kind::Imaging, Some(m)) => {
            json!({ "coding": [{ "system": "http://dicom.nema.org/resources/ontology/DCM", "code": m }], "text": m })
        }
        (Kind::Imaging, None) => json!({ "text": "Imaging" }),
    };
    let mut v = json!({
        "resourceType": "ServiceRequest",
        "id": fhir_id(&r.id),
        "identifier": identifier(r),
        "status": status,
        "intent": "order",
        "category": category(r.kind),
        "priority": priority,
        "code": code,
        "subject": subject(study),
        "authoredOn": instant(r.received_at),
        "requester": site(&r.sending_site),
        "performer": [site(&r.centre_site)],
        "supportingInfo": [{
            "type": "ImagingStudy",
            "identifier": { "system": "urn:ietf:rfc:3986", "value": format!("urn:oid:{}", r.study_uid) }
        }],
    });
    if let Some(q) = &r.question {
        v["reasonCode"] = json!([{ "text": q }]);
    }
    if let Some(phone) = &r.callback_phone {
        v["note"] = json!([{ "text": format!("Call back: {phone}") }]);
    }
    v
}

/// The latest signed version of a request as a `DiagnosticReport` (`amended` after an
/// amendment), or None before it is signed.
pub fn diagnostic_report(r: &Request, study: &Value, reports: &[Report]) -> Option<Value> {
    let last = reports.last()?;
    let code = match r.kind {
        Kind::Ecg => {
            json!({ "coding": [{ "system": "http://loinc.org", "code": "11524-6", "display": "EKG study" }] })
        }
        Kind::Imaging => {
            json!({ "coding": [{ "system": "http://loinc.org", "code": "18748-4", "display": "Diagnostic imaging study" }] })
        }
    };
    use base64::Engine;
    let text = format!("{}\n\n{}", last.body.findings, last.body.impression);
    let mut v = json!({
        "resourceType": "DiagnosticReport",
        "id": fhir_id(&r.id),
        "identifier": identifier(r),
        "basedOn": [{ "reference": format!("ServiceRequest/{}", fhir_id(&r.id)) }],
        "status": if last.version > 1 { "amended" } else { "final" },
        "category": category(r.kind),
        "code": code,
        "subject": subject(study),
        "effectiveDateTime": instant(r.ready_at.unwrap_or(r.received_at)),
        "issued": instant(last.signed_at),
        "performer": [site(&r.centre_site)],
        "resultsInterpreter": [{ "identifier": { "system": "urn:ferry:user", "value": last.signed_by } }],
        "conclusion": last.body.impression,
        "presentedForm": [{
            "contentType": "text/plain; charset=utf-8",
            "language": "zh-CN",
            "data": base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
            "title": format!("Report version {}", last.version),
        }],
    });
    // FHIR's `hash` is SHA-1; Ferry's signature hash is SHA-256, given as an extension.
    v["extension"] = json!([{
        "url": "urn:ferry:report-sha256",
        "valueString": last.content_sha256,
    }]);
    if !last.body.conclusions.is_empty() {
        v["conclusionCode"] =
            json!(last
            .body
            .conclusions
            .iter()
            .map(|c| json!({ "coding": [{ "system": "urn:ferry:ecg-conclusion", "code": c }] }))
            .collect::<Vec<_>>());
    }
    Some(v)
}

/// A search result `Bundle`.
pub fn bundle(base: &str, kind: &str, resources: Vec<Value>) -> Value {
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|r| {
            let id = r["id"].as_str().unwrap_or("").to_string();
            json!({ "fullUrl": format!("{base}/fhir/{kind}/{id}"), "resource": r, "search": { "mode": "match" } })
        })
        .collect();
    json!({ "resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries })
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_go_both_ways() {
        for id in ["rd_AbC-x_Y9", "rd_0", "rd_-_-"] {
            let f = super::fhir_id(id);
            assert!(f.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'), "{f}");
            assert_eq!(super::request_id(&f), id);
        }
    }
}
