-- Training broadcasts (docs/broadcasts.md): a session a trainer schedules for an audience of
-- sites (a site alone, or it and every site below it), and its attendance.

CREATE TABLE broadcasts (
    id           TEXT PRIMARY KEY,
    site_id      TEXT NOT NULL REFERENCES sites(id),
    trainer_id   TEXT NOT NULL REFERENCES users(id),
    title        TEXT NOT NULL,
    description  TEXT NOT NULL,
    starts_at    INTEGER NOT NULL,
    minutes      INTEGER NOT NULL CHECK (minutes BETWEEN 5 AND 600),
    state        TEXT NOT NULL CHECK (state IN ('scheduled', 'live', 'ended', 'cancelled')),
    created_at   INTEGER NOT NULL,
    live_at      INTEGER,
    ended_at     INTEGER
);
CREATE INDEX broadcasts_starts ON broadcasts(starts_at);

CREATE TABLE broadcast_audience (
    broadcast_id  TEXT NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    site_id       TEXT NOT NULL REFERENCES sites(id),
    subtree       INTEGER NOT NULL CHECK (subtree IN (0, 1)),
    PRIMARY KEY (broadcast_id, site_id)
);
