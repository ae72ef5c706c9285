-- Reading centres. A routing rule sends a site's (or a whole subtree's) imaging studies or
-- ECGs to a reading centre; each study or ECG that arrives from a routed site becomes one
-- reading request of that centre (its study shared with the centre in the same transaction).
-- A reader claims a request, writes a draft and signs a report; signed reports never change
-- (an amendment is a new signed version).
CREATE TABLE routing_rules (
    id           TEXT PRIMARY KEY,
    centre_site  TEXT NOT NULL REFERENCES sites(id),
    from_site    TEXT NOT NULL REFERENCES sites(id),
    subtree      INTEGER NOT NULL DEFAULT 0,
    kind         TEXT NOT NULL CHECK (kind IN ('imaging', 'ecg')),
    modalities   TEXT,
    priority     TEXT NOT NULL CHECK (priority IN ('routine', 'urgent', 'stat')),
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
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
    priority_rank     INTEGER GENERATED ALWAYS AS (CASE priority WHEN 'stat' THEN 0 WHEN 'urgent' THEN 1 ELSE 2 END) STORED,
    state             TEXT NOT NULL CHECK (state IN ('collecting', 'ready', 'claimed', 'review', 'signed', 'cancelled')),
    question          TEXT,
    callback_phone    TEXT,
    requested_by      TEXT NOT NULL,
    instances         INTEGER NOT NULL DEFAULT 0,
    received_at       INTEGER NOT NULL,
    last_instance_at  INTEGER NOT NULL,
    ready_at          INTEGER,
    claimed_by        TEXT REFERENCES users(id),
    claimed_at        INTEGER,
    active_at         INTEGER,
    signed_at         INTEGER,
    drafted_by        TEXT REFERENCES users(id),
    acknowledged_by   TEXT REFERENCES users(id),
    acknowledged_at   INTEGER,
    draft             TEXT,
    stamp             INTEGER NOT NULL DEFAULT 0
);
-- One open request per centre and study (or ECG): many instances update it.
CREATE UNIQUE INDEX reading_requests_one_open ON reading_requests(centre_site, subject) WHERE state <> 'cancelled';
CREATE INDEX reading_requests_worklist ON reading_requests(centre_site, priority_rank, received_at, id);
CREATE INDEX reading_requests_worklist_site ON reading_requests(centre_site, sending_site, priority_rank, received_at, id);
CREATE INDEX reading_requests_sending ON reading_requests(sending_site, received_at);
CREATE INDEX reading_requests_received ON reading_requests(received_at);

CREATE TABLE reading_reports (
    request_id     TEXT NOT NULL REFERENCES reading_requests(id),
    version        INTEGER NOT NULL,
    body           TEXT NOT NULL,
    reason         TEXT,
    signed_by      TEXT NOT NULL REFERENCES users(id),
    signed_at      INTEGER NOT NULL,
    content_sha256 TEXT NOT NULL,
    drafted_by     TEXT REFERENCES users(id),
    PRIMARY KEY (request_id, version)
);
CREATE TRIGGER reading_reports_no_update BEFORE UPDATE ON reading_reports
BEGIN
    SELECT RAISE(ABORT, 'signed reports are never changed; sign an amendment');
END;
CREATE TRIGGER reading_reports_no_delete BEFORE DELETE ON reading_reports
BEGIN
    SELECT RAISE(ABORT, 'signed reports are never changed; sign an amendment');
END;

-- Critical results (危急值): a finding the sending clinic must acknowledge, with a read-back
-- line; unacknowledged in time, it escalates and the reader phones. Calls are logged.
CREATE TABLE critical_results (
    id               TEXT PRIMARY KEY,
    request_id       TEXT NOT NULL REFERENCES reading_requests(id),
    sending_site     TEXT NOT NULL REFERENCES sites(id),
    finding          TEXT NOT NULL,
    note             TEXT,
    raised_by        TEXT NOT NULL REFERENCES users(id),
    raised_at        INTEGER NOT NULL,
    acknowledged_by  TEXT REFERENCES users(id),
    acknowledged_at  INTEGER,
    readback         TEXT,
    escalated_at     INTEGER
);
CREATE INDEX critical_results_open ON critical_results(sending_site, acknowledged_at);
CREATE INDEX critical_results_request ON critical_results(request_id);

CREATE TABLE critical_calls (
    critical_id  TEXT NOT NULL REFERENCES critical_results(id),
    at           INTEGER NOT NULL,
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
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (centre_site, kind, modality)
);
