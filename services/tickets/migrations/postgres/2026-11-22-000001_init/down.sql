DROP TABLE comments;
DROP TABLE assignments;
DROP TABLE tickets;
DROP TABLE zones;
DROP TABLE ticket_counters;
