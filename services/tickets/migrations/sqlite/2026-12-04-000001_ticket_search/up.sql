-- Text search (`q`) on SQLite: a trigram FTS5 index of title and description, so that a
-- case-insensitive substring of three or more characters is found through the index instead
-- of a scan of the tenant's tickets. Documents are numbered by ticket_search_docs (an
-- INTEGER PRIMARY KEY, stable across VACUUM, unlike the implicit rowid of a table keyed by
-- text); triggers keep the index in step inside the transaction that writes the ticket.
CREATE TABLE ticket_search_docs (
    doc INTEGER PRIMARY KEY,
    ticket_id TEXT NOT NULL UNIQUE
);

CREATE VIRTUAL TABLE ticket_search USING fts5(title, description, tokenize = 'trigram');

INSERT INTO ticket_search_docs (ticket_id) SELECT id FROM tickets;
INSERT INTO ticket_search (rowid, title, description)
    SELECT d.doc, t.title, t.description FROM ticket_search_docs d JOIN tickets t ON t.id = d.ticket_id;

CREATE TRIGGER ticket_search_insert AFTER INSERT ON tickets BEGIN
    INSERT INTO ticket_search_docs (ticket_id) VALUES (new.id);
    INSERT INTO ticket_search (rowid, title, description)
        VALUES ((SELECT doc FROM ticket_search_docs WHERE ticket_id = new.id), new.title, new.description);
END;

CREATE TRIGGER ticket_search_update AFTER UPDATE OF title, description ON tickets BEGIN
    UPDATE ticket_search SET title = new.title, description = new.description
        WHERE rowid = (SELECT doc FROM ticket_search_docs WHERE ticket_id = new.id);
END;

CREATE TRIGGER ticket_search_delete AFTER DELETE ON tickets BEGIN
    DELETE FROM ticket_search WHERE rowid = (SELECT doc FROM ticket_search_docs WHERE ticket_id = old.id);
    DELETE FROM ticket_search_docs WHERE ticket_id = old.id;
END;
