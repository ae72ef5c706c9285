-- Imaging archive index: studies, series, instances (bytes live in the object store under
-- object_key), and the sites a study is shared with. An instance row is written only after its
-- bytes are durable, in one transaction with its study and series rows.

CREATE TABLE studies (
    study_uid           TEXT PRIMARY KEY,
    origin_site         TEXT NOT NULL REFERENCES sites(id),
    patient_name        TEXT,
    patient_id          TEXT,
    patient_birth_date  TEXT,
    patient_sex         TEXT,
    study_date          TEXT,
    study_time          TEXT,
    accession_number    TEXT,
    study_description   TEXT,
    study_id            TEXT,
    referring_physician TEXT,
    created_at          INTEGER NOT NULL
);
CREATE INDEX studies_origin ON studies(origin_site);
CREATE INDEX studies_date ON studies(study_date);
CREATE INDEX studies_patient_id ON studies(patient_id);
CREATE INDEX studies_accession ON studies(accession_number);

CREATE TABLE series (
    series_uid          TEXT PRIMARY KEY,
    study_uid           TEXT NOT NULL REFERENCES studies(study_uid),
    modality            TEXT,
    series_number       INTEGER,
    series_description  TEXT,
    series_date         TEXT,
    created_at          INTEGER NOT NULL
);
CREATE INDEX series_study ON series(study_uid);
CREATE INDEX series_modality ON series(modality);

CREATE TABLE instances (
    sop_instance_uid    TEXT PRIMARY KEY,
    series_uid          TEXT NOT NULL REFERENCES series(series_uid),
    study_uid           TEXT NOT NULL REFERENCES studies(study_uid),
    sop_class_uid       TEXT NOT NULL,
    transfer_syntax     TEXT NOT NULL,
    instance_number     INTEGER,
    rows_count          INTEGER,
    columns_count       INTEGER,
    frames              INTEGER,
    bits_allocated      INTEGER,
    size                INTEGER NOT NULL,
    sha256              TEXT NOT NULL,
    object_key          TEXT NOT NULL,
    created_at          INTEGER NOT NULL
);
CREATE INDEX instances_series ON instances(series_uid);
CREATE INDEX instances_study ON instances(study_uid);

CREATE TABLE study_shares (
    study_uid   TEXT NOT NULL REFERENCES studies(study_uid),
    site_id     TEXT NOT NULL REFERENCES sites(id),
    shared_by   TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (study_uid, site_id)
);
CREATE INDEX study_shares_site ON study_shares(site_id);
