-- A training session's questions, up-votes and raised hands (docs/broadcasts.md). A question's
-- text is what a person wrote during a session and may name a patient: it is read only through
-- the session's read permit, and never logged.

CREATE TABLE broadcast_questions (
    id            TEXT PRIMARY KEY,
    broadcast_id  TEXT NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL REFERENCES users(id),
    site_id       TEXT NOT NULL REFERENCES sites(id),
    body          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    answered_at   BIGINT
);
CREATE INDEX broadcast_questions_of ON broadcast_questions(broadcast_id, created_at);

-- One up-vote per person and question: the primary key makes a second one (two clicks at
-- once) a no-op.
CREATE TABLE broadcast_votes (
    question_id  TEXT NOT NULL REFERENCES broadcast_questions(id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users(id),
    PRIMARY KEY (question_id, user_id)
);

-- Hands raised now, one per person and session.
CREATE TABLE broadcast_hands (
    broadcast_id  TEXT NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL REFERENCES users(id),
    site_id       TEXT NOT NULL REFERENCES sites(id),
    raised_at     BIGINT NOT NULL,
    PRIMARY KEY (broadcast_id, user_id)
);
