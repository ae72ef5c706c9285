-- Byte ranges of each instance's large values (at any depth, by path), built at ingest so
-- that /bulkdata is a range read, never a read of the whole instance.
ALTER TABLE instances ADD COLUMN bulk_index TEXT;
