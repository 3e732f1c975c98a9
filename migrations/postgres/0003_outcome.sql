-- A call's `outcome_schema` (JSON Schema text, as given) and the outcome the AI reported
-- through `report_outcome` (JSON text, valid against the schema; the last report wins).
ALTER TABLE calls ADD COLUMN outcome_schema TEXT;
ALTER TABLE calls ADD COLUMN outcome TEXT;
