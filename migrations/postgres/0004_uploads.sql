-- Resumable uploads (tus 1.0). The bytes received so far live in a staging file; this row
-- says whose upload it is, how long it will be, and, once complete, what became of it.
CREATE TABLE uploads (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id),
    site_id       TEXT NOT NULL REFERENCES sites(id),
    length        BIGINT NOT NULL,
    filename      TEXT,
    created_at    BIGINT NOT NULL,
    completed_at  BIGINT,
    result        TEXT
);
CREATE INDEX uploads_user ON uploads(user_id);
