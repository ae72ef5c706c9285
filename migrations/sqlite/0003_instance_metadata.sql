-- Per-instance DICOM JSON metadata (bulk values as BulkDataURI) and frame byte ranges, both
-- built at ingest so that /metadata and /frames never re-read or re-parse instances.
ALTER TABLE instances ADD COLUMN metadata TEXT;
ALTER TABLE instances ADD COLUMN frame_index TEXT;
