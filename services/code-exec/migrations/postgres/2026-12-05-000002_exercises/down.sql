DROP INDEX submissions_tenant_user;
DROP INDEX submissions_attempt;
ALTER TABLE submissions DROP COLUMN case_index;
ALTER TABLE submissions DROP COLUMN attempt_id;
DROP TABLE attempts;
DROP TABLE exercises;
