-- ECG records: one per ECG received (any format), of a site. The bytes as received stay in the
-- object store under object_key (for DICOM ECGs, the archive's own instance object); the record
-- holds what lists and the viewer need: the patient, when, the groups, the device's and
-- Ferry's measurements, the statements. Re-sending the same ECG (same bytes, same site) finds
-- the same record.
CREATE TABLE ecgs (
    id                  TEXT PRIMARY KEY,
    site_id             TEXT NOT NULL REFERENCES sites(id),
    format              TEXT NOT NULL,
    sha256              TEXT NOT NULL,
    object_key          TEXT NOT NULL,
    study_uid           TEXT,
    sop_instance_uid    TEXT,
    patient_name        TEXT,
    patient_id          TEXT,
    patient_birth_date  TEXT,
    patient_sex         TEXT,
    acquired_at         TEXT,
    summary             TEXT NOT NULL,
    created_by          TEXT,
    created_at          BIGINT NOT NULL
);
CREATE UNIQUE INDEX ecgs_site_sha ON ecgs(site_id, sha256);
CREATE INDEX ecgs_site_acquired ON ecgs(site_id, acquired_at);
CREATE INDEX ecgs_study ON ecgs(study_uid);
CREATE INDEX ecgs_patient_id ON ecgs(LOWER(patient_id));
