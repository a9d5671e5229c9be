ALTER INDEX tickets_description_trgm_idx RESET (fastupdate);
ALTER INDEX tickets_title_trgm_idx RESET (fastupdate);
DROP INDEX tickets_tenant_team_idx;
CREATE INDEX tickets_tenant_team_idx ON tickets (tenant_id, team_id);
DROP INDEX tickets_tenant_assignee_idx;
DROP INDEX tickets_tenant_status_zone_idx;
