DROP TABLE sync_runs;
DROP TABLE connections;
