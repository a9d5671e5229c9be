-- The common list filters (status and zone; a team; an assignee) walk an index in number order
-- and stop after a page, instead of filtering the tenant's whole list.
CREATE INDEX tickets_tenant_status_zone_idx ON tickets (tenant_id, status, zone, number);
CREATE INDEX tickets_tenant_assignee_idx ON tickets (tenant_id, assignee_id, number);
DROP INDEX tickets_tenant_team_idx;
CREATE INDEX tickets_tenant_team_idx ON tickets (tenant_id, team_id, number);
