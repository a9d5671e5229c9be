DROP TABLE quantity_changes;
DROP TABLE claims;
DROP TABLE rules;
DROP TABLE discrepancies;
DROP TABLE source_counts;
DROP TABLE snapshots;
DROP TABLE items;
