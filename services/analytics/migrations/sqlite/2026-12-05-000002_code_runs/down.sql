DROP TABLE code_runs;
