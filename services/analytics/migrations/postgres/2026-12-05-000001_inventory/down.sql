DROP TABLE inventory_claims;
DROP TABLE inventory_discrepancies;
