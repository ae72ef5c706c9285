-- Reading centres. A routing rule sends a site's (or a whole subtree's) imaging studies or
-- ECGs to a reading centre; each study or ECG that arrives from a routed site becomes one
-- reading request of that centre (its study shared with the centre in the same transaction).
-- A reader claims a request, writes a draft and signs a report; signed reports never change
-- (an amendment is a new signed version).
CREATE TABLE routing_rules (
    id           TEXT PRIMARY KEY,
    centre_site  TEXT NOT NULL REFERENCES sites(id),
    from_site    TEXT NOT NULL REFERENCES sites(id),
    subtree      BIGINT NOT NULL DEFAULT 0,
    kind         TEXT NOT NULL CHECK (kind IN ('imaging', 'ecg')),
    modalities   TEXT,
    priority     TEXT NOT NULL CHECK (priority IN ('routine', 'urgent', 'stat')),
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    UNIQUE (centre_site, from_site, kind)
);
CREATE INDEX routing_rules_from ON routing_rules(from_site, kind);

CREATE TABLE reading_requests (
    id                TEXT PRIMARY KEY,
    kind              TEXT NOT NULL CHECK (kind IN ('imaging', 'ecg')),
    centre_site       TEXT NOT NULL REFERENCES sites(id),
    sending_site      TEXT NOT NULL REFERENCES sites(id),
    -- The study (imaging) or the ECG record (ecg) the request is about.
    subject           TEXT NOT NULL,
    study_uid         TEXT NOT NULL,
    ecg_id            TEXT,
    modality          TEXT,
    priority          TEXT NOT NULL CHECK (priority IN ('routine', 'urgent', 'stat')),
    -- The worklist's order: STAT, urgent, routine (kept by the database, so an index serves it).
    priority_rank     BIGINT GENERATED ALWAYS AS (CASE priority WHEN 'stat' THEN 0 WHEN 'urgent' THEN 1 ELSE 2 END) STORED,
    state             TEXT NOT NULL CHECK (state IN ('collecting', 'ready', 'claimed', 'review', 'signed', 'cancelled')),
    question          TEXT,
    callback_phone    TEXT,
    requested_by      TEXT NOT NULL,
    instances         BIGINT NOT NULL DEFAULT 0,
    received_at       BIGINT NOT NULL,
    last_instance_at  BIGINT NOT NULL,
    ready_at          BIGINT,
    claimed_by        TEXT REFERENCES users(id),
    claimed_at        BIGINT,
    active_at         BIGINT,
    signed_at         BIGINT,
    drafted_by        TEXT REFERENCES users(id),
    acknowledged_by   TEXT REFERENCES users(id),
    acknowledged_at   BIGINT,
    draft             TEXT,
    stamp             BIGINT NOT NULL DEFAULT 0
);
-- One open request per centre and study (or ECG): many instances update it.
CREATE UNIQUE INDEX reading_requests_one_open ON reading_requests(centre_site, subject) WHERE state <> 'cancelled';
CREATE INDEX reading_requests_worklist ON reading_requests(centre_site, priority_rank, received_at, id);
CREATE INDEX reading_requests_worklist_site ON reading_requests(centre_site, sending_site, priority_rank, received_at, id);
CREATE INDEX reading_requests_sending ON reading_requests(sending_site, received_at);
CREATE INDEX reading_requests_received ON reading_requests(received_at);

CREATE TABLE reading_reports (
    request_id     TEXT NOT NULL REFERENCES reading_requests(id),
    version        BIGINT NOT NULL,
    body           TEXT NOT NULL,
    reason         TEXT,
    signed_by      TEXT NOT NULL REFERENCES users(id),
    signed_at      BIGINT NOT NULL,
    content_sha256 TEXT NOT NULL,
    drafted_by     TEXT REFERENCES users(id),
    PRIMARY KEY (request_id, version)
);
CREATE FUNCTION reading_reports_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'signed reports are never changed; sign an amendment';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER reading_reports_no_change BEFORE UPDATE OR DELETE ON reading_reports
    FOR EACH ROW EXECUTE FUNCTION reading_reports_append_only();

-- Critical results (危急值): a finding the sending clinic must acknowledge, with a read-back
-- line; unacknowledged in time, it escalates and the reader phones. Calls are logged.
CREATE TABLE critical_results (
    id               TEXT PRIMARY KEY,
    request_id       TEXT NOT NULL REFERENCES reading_requests(id),
    sending_site     TEXT NOT NULL REFERENCES sites(id),
    finding          TEXT NOT NULL,
    note             TEXT,
    raised_by        TEXT NOT NULL REFERENCES users(id),
    raised_at        BIGINT NOT NULL,
    acknowledged_by  TEXT REFERENCES users(id),
    acknowledged_at  BIGINT,
    readback         TEXT,
    escalated_at     BIGINT
);
CREATE INDEX critical_results_open ON critical_results(sending_site, acknowledged_at);
CREATE INDEX critical_results_request ON critical_results(request_id);

CREATE TABLE critical_calls (
    critical_id  TEXT NOT NULL REFERENCES critical_results(id),
    at           BIGINT NOT NULL,
    by_user      TEXT NOT NULL REFERENCES users(id),
    outcome      TEXT NOT NULL CHECK (outcome IN ('reached', 'no_answer', 'left_message')),
    note         TEXT
);
CREATE INDEX critical_calls_result ON critical_calls(critical_id, at);

-- Report templates a centre's admins keep: per kind, and per modality ('' for any).
CREATE TABLE reading_templates (
    centre_site  TEXT NOT NULL REFERENCES sites(id),
    kind         TEXT NOT NULL CHECK (kind IN ('imaging', 'ecg')),
    modality     TEXT NOT NULL,
    findings     TEXT NOT NULL,
    impression   TEXT NOT NULL,
    updated_by   TEXT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (centre_site, kind, modality)
);
