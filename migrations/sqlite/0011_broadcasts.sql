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

-- Who took part, per media connection: when they joined and left, when media first reached
-- them, and how long it kept reaching them (their link up).
CREATE TABLE broadcast_attendance (
    broadcast_id    TEXT NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    peer            TEXT NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users(id),
    site_id         TEXT NOT NULL REFERENCES sites(id),
    role            TEXT NOT NULL CHECK (role IN ('presenter', 'viewer')),
    joined_at       INTEGER NOT NULL,
    first_media_at  INTEGER,
    left_at         INTEGER,
    watched_ms      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (broadcast_id, peer)
);
CREATE INDEX broadcast_attendance_user ON broadcast_attendance(user_id);

-- Recordings of a session's presenter: WebM files in the object store.
CREATE TABLE broadcast_recordings (
    id            TEXT PRIMARY KEY,
    broadcast_id  TEXT NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    object_key    TEXT NOT NULL,
    bytes         INTEGER NOT NULL,
    duration_ms   INTEGER NOT NULL,
    video_frames  INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX broadcast_recordings_of ON broadcast_recordings(broadcast_id, created_at);
