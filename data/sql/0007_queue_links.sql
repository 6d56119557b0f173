-- SPDX-License-Identifier: GPL-3.0-or-later
-- Which queue sends calls to which (when closed, when full, on overflow),
-- beside the definitions that say so. The foreign key makes PostgreSQL
-- itself refuse to delete a queue that another queue still sends calls to,
-- also when the delete races the change that adds the reference.
-- (NO ACTION, not RESTRICT: deleting a company deletes all its queues in
-- one statement, links and all.)

CREATE TABLE queue_links (
  company_id uuid NOT NULL,
  from_queue uuid NOT NULL,
  to_queue uuid NOT NULL,
  PRIMARY KEY (from_queue, to_queue),
  CHECK (from_queue <> to_queue),
  FOREIGN KEY (from_queue, company_id) REFERENCES queues (id, company_id) ON DELETE CASCADE,
  FOREIGN KEY (to_queue, company_id) REFERENCES queues (id, company_id)
);
CREATE INDEX queue_links_to ON queue_links (to_queue);

INSERT INTO queue_links (company_id, from_queue, to_queue)
  SELECT DISTINCT q.company_id, q.id, t.id
  FROM queues q
  CROSS JOIN LATERAL (VALUES (q.definition #>> '{when_closed,queue_id}'),
                             (q.definition #>> '{when_full,queue_id}'),
                             (q.definition #>> '{overflow,queue_id}')) AS r (ref)
  JOIN queues t ON t.company_id = q.company_id AND t.id::text = lower(r.ref)
  WHERE t.id <> q.id;

ALTER TABLE queue_links ENABLE ROW LEVEL SECURITY;
ALTER TABLE queue_links FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON queue_links
  USING (calldocker_platform() OR company_id = calldocker_company())
  WITH CHECK (calldocker_platform() OR company_id = calldocker_company());

GRANT SELECT, INSERT, UPDATE, DELETE ON queue_links TO calldocker_app;
