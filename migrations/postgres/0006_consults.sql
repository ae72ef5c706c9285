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
    scheduled_at      BIGINT,
    state             TEXT NOT NULL,
    accepted_by       TEXT REFERENCES users(id),
    accepted_at       BIGINT,
    decline_reason    TEXT,
    cancel_reason     TEXT,
    escalated_at      BIGINT,
    call_started_at   BIGINT,
    completed_at      BIGINT,
    ack_by            TEXT REFERENCES users(id),
    ack_at            BIGINT,
    ack_version       BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
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
    at          BIGINT NOT NULL,
    PRIMARY KEY (consult_id, user_id)
);

CREATE TABLE consult_opinions (
    consult_id  TEXT NOT NULL REFERENCES consults(id),
    version     BIGINT NOT NULL,
    text        TEXT NOT NULL,
    signed_by   TEXT NOT NULL REFERENCES users(id),
    signed_at   BIGINT NOT NULL,
    PRIMARY KEY (consult_id, version)
);
CREATE FUNCTION consult_opinions_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'signed opinions are never changed; sign a new version';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER consult_opinions_no_change BEFORE UPDATE OR DELETE ON consult_opinions
    FOR EACH ROW EXECUTE FUNCTION consult_opinions_append_only();
