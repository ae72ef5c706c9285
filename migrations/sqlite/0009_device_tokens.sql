-- Bearer tokens of devices (an ECG cart that exports files, a modality that sends by HTTP):
-- like a person's API token, shown once and stored as its SHA-256, but owned by a registered
-- device of a site. A device token may only send for its device's site.
CREATE TABLE device_tokens (
    id            TEXT PRIMARY KEY,
    device_id     TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    token_hash    TEXT NOT NULL UNIQUE,
    label         TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER,
    last_used_at  INTEGER
);
CREATE INDEX device_tokens_device ON device_tokens(device_id);

-- A resumable upload is a person's or a device's (exactly one of the two).
CREATE TABLE uploads_v9 (
    id            TEXT PRIMARY KEY,
    user_id       TEXT REFERENCES users(id),
    device_id     TEXT REFERENCES devices(id) ON DELETE CASCADE,
    site_id       TEXT NOT NULL REFERENCES sites(id),
    length        INTEGER NOT NULL,
    filename      TEXT,
    created_at    INTEGER NOT NULL,
    completed_at  INTEGER,
    result        TEXT,
    CHECK ((user_id IS NULL) <> (device_id IS NULL))
);
INSERT INTO uploads_v9 (id, user_id, site_id, length, filename, created_at, completed_at, result)
    SELECT id, user_id, site_id, length, filename, created_at, completed_at, result FROM uploads;
DROP TABLE uploads;
ALTER TABLE uploads_v9 RENAME TO uploads;
CREATE INDEX uploads_user ON uploads(user_id);
CREATE INDEX uploads_device ON uploads(device_id);
