-- Video consults (docs/consults.md): a request from a clinician to a specialty (or one named
-- specialist), its studies, the specialists who declined it, and the signed opinions, which
-- are append-only: an amendment is a new version, never a change of an old one.

CREATE TABLE consults (
    id                TEXT PRIMARY KEY,
    from_site         TEXT NOT NULL REFERENCES sites(id),
    requested_by      TEXT NOT NULL REFERENCES users(id),
    specialty         TEXT NOT NULL,
    specialist        TEXT REFERENCES users(id),
    urgency           TEXT NOT NULL,
    summary           TEXT NOT NULL,
    scheduled_at      INTEGER,
    state             TEXT NOT NULL,
    accepted_by       TEXT REFERENCES users(id),
    accepted_at       INTEGER,
    decline_reason    TEXT,
    cancel_reason     TEXT,
    escalated_at      INTEGER,
    call_started_at   INTEGER,
    completed_at      INTEGER,
    ack_by            TEXT REFERENCES users(id),
    ack_at            INTEGER,
    ack_version       INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX consults_from_site ON consults(from_site, created_at);
CREATE INDEX consults_open ON consults(state, specialty);
CREATE INDEX consults_accepted_by ON consults(accepted_by);

CREATE TABLE consult_studies (
    consult_id  TEXT NOT NULL REFERENCES consults(id),
    study_uid   TEXT NOT NULL REFERENCES studies(study_uid),
    PRIMARY KEY (consult_id, study_uid)
);

CREATE TABLE consult_declines (
    consult_id  TEXT NOT NULL REFERENCES consults(id),
    user_id     TEXT NOT NULL REFERENCES users(id),
    reason      TEXT NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (consult_id, user_id)
);

CREATE TABLE consult_opinions (
    consult_id  TEXT NOT NULL REFERENCES consults(id),
    version     INTEGER NOT NULL,
    text        TEXT NOT NULL,
    signed_by   TEXT NOT NULL REFERENCES users(id),
    signed_at   INTEGER NOT NULL,
    PRIMARY KEY (consult_id, version)
);
CREATE TRIGGER consult_opinions_no_update BEFORE UPDATE ON consult_opinions
BEGIN
    SELECT RAISE(ABORT, 'signed opinions are never changed; sign a new version');
END;
CREATE TRIGGER consult_opinions_no_delete BEFORE DELETE ON consult_opinions
BEGIN
    SELECT RAISE(ABORT, 'signed opinions are never changed; sign a new version');
END;
