-- Bearer tokens of devices (an ECG cart that exports files, a modality that sends by HTTP):
-- like a person's API token, shown once and stored as its SHA-256, but owned by a registered
-- device of a site. A device token may only send for its device's site.
CREATE TABLE device_tokens (
    id            TEXT PRIMARY KEY,
    device_id     TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    token_hash    TEXT NOT NULL UNIQUE,
    label         TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    revoked_at    BIGINT,
    last_used_at  BIGINT
);
CREATE INDEX device_tokens_device ON device_tokens(device_id);

-- A resumable upload is a person's or a device's (exactly one of the two).
ALTER TABLE uploads ALTER COLUMN user_id DROP NOT NULL;
ALTER TABLE uploads ADD COLUMN device_id TEXT REFERENCES devices(id) ON DELETE CASCADE;
ALTER TABLE uploads ADD CONSTRAINT uploads_one_owner CHECK ((user_id IS NULL) <> (device_id IS NULL));
CREATE INDEX uploads_device ON uploads(device_id);
