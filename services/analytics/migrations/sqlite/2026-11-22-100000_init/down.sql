DROP TABLE backfills;
DROP TABLE plan_factors;
DROP TABLE activities;
DROP TABLE rollups;
DROP TABLE ticket_facts;
