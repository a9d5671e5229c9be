-- The common list filters (status and zone; a team; an assignee) walk an index in number order
-- and stop after a page, instead of filtering the tenant's whole list.
CREATE INDEX tickets_tenant_status_zone_idx ON tickets (tenant_id, status, zone, number);
CREATE INDEX tickets_tenant_assignee_idx ON tickets (tenant_id, assignee_id, number);
DROP INDEX tickets_tenant_team_idx;
CREATE INDEX tickets_tenant_team_idx ON tickets (tenant_id, team_id, number);
-- Text search: a GIN pending list is scanned whole by every search until vacuum merges it, so
-- new tickets go straight into the trigram indexes (tickets are read far more than written).
ALTER INDEX tickets_title_trgm_idx SET (fastupdate = off);
ALTER INDEX tickets_description_trgm_idx SET (fastupdate = off);
SELECT gin_clean_pending_list('tickets_title_trgm_idx'::regclass);
SELECT gin_clean_pending_list('tickets_description_trgm_idx'::regclass);
