DROP TABLE stripe_events;
DROP INDEX claims_one_per_dispute;
DROP INDEX claims_by_reference;
ALTER TABLE claims DROP COLUMN stripe_attempt;
ALTER TABLE claims DROP COLUMN stripe_target;
ALTER TABLE claims DROP COLUMN connection_id;
