-- A training session's materials (docs/broadcasts.md): PDF slides and handouts its trainer
-- uploads, kept in the object store under materials/{session}/{id}.pdf. A file's name is what
-- the trainer called it (a case conference's may name a patient): shown to the audience, never
-- logged.

CREATE TABLE broadcast_materials (
    id            TEXT PRIMARY KEY,
    broadcast_id  TEXT NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    object_key    TEXT NOT NULL,
    bytes         INTEGER NOT NULL,
    sha256        TEXT NOT NULL,
    uploaded_by   TEXT NOT NULL REFERENCES users(id),
    created_at    INTEGER NOT NULL
);
CREATE INDEX broadcast_materials_of ON broadcast_materials(broadcast_id, created_at);
