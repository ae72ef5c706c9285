-- QIDO matches text case-insensitively (LOWER(col) = LOWER($n), or LIKE on LOWER(col) with a
-- range on its literal prefix): indexes on the lowered columns let those use an index instead
-- of reading every study.
CREATE INDEX studies_patient_id_ci ON studies (LOWER(patient_id));
CREATE INDEX studies_patient_name_ci ON studies (LOWER(patient_name));
CREATE INDEX studies_accession_ci ON studies (LOWER(accession_number));
