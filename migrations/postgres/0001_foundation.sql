-- Foundation: the network (sites, users, devices), credentials (API tokens, sessions) and the
-- append-only audit trail. Times are unix milliseconds; lists are comma-separated.

CREATE TABLE sites (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    tier        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    parent_id   TEXT REFERENCES sites(id),
    created_at  BIGINT NOT NULL
);
CREATE INDEX sites_parent ON sites(parent_id);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    site_id        TEXT NOT NULL REFERENCES sites(id),
    display_name   TEXT NOT NULL,
    roles          TEXT NOT NULL,
    specialties    TEXT NOT NULL,
    password_hash  TEXT,
    disabled       BIGINT NOT NULL DEFAULT 0,
    failed_logins  BIGINT NOT NULL DEFAULT 0,
    locked_until   BIGINT,
    created_at     BIGINT NOT NULL
);
CREATE INDEX users_site ON users(site_id);

CREATE TABLE devices (
    id          TEXT PRIMARY KEY,
    site_id     TEXT NOT NULL REFERENCES sites(id),
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    ae_title    TEXT UNIQUE,
    created_at  BIGINT NOT NULL
);
CREATE INDEX devices_site ON devices(site_id);

CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id),
    token_hash    TEXT NOT NULL UNIQUE,
    label         TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    revoked_at    BIGINT,
    last_used_at  BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

CREATE TABLE sessions (
    id_hash       TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id),
    csrf_token    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE audit_events (
    id            BIGSERIAL PRIMARY KEY,
    at            BIGINT NOT NULL,
    actor         TEXT,
    actor_site    TEXT,
    site_id       TEXT,
    action        TEXT NOT NULL,
    resource_kind TEXT NOT NULL,
    resource_id   TEXT,
    outcome       TEXT NOT NULL,
    client_addr   TEXT,
    detail        TEXT
);
CREATE INDEX audit_at ON audit_events(at);
CREATE INDEX audit_actor ON audit_events(actor, at);
CREATE INDEX audit_site ON audit_events(site_id, at);
CREATE INDEX audit_actor_site ON audit_events(actor_site, at);
CREATE INDEX audit_resource ON audit_events(resource_kind, resource_id);

CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
