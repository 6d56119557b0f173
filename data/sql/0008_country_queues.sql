-- SPDX-License-Identifier: GPL-3.0-or-later
-- Which queue a visitor's call enters, by the visitor's country, when the
-- visitor names none (docs/routing.md). The foreign key makes PostgreSQL
-- refuse to delete a queue that a country still sends calls to, also when
-- the delete races the change that adds the country (NO ACTION, not
-- RESTRICT: deleting a company deletes its queues and countries in one
-- statement).

CREATE TABLE country_queues (
  company_id uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  country text NOT NULL CHECK (country ~ '^[A-Z]{2}$' AND country <> 'XX'),
  queue_id uuid NOT NULL,
  PRIMARY KEY (company_id, country),
  FOREIGN KEY (queue_id, company_id) REFERENCES queues (id, company_id)
);
CREATE INDEX country_queues_queue ON country_queues (queue_id);

ALTER TABLE country_queues ENABLE ROW LEVEL SECURITY;
ALTER TABLE country_queues FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON country_queues
  USING (calldocker_platform() OR company_id = calldocker_company())
  WITH CHECK (calldocker_platform() OR company_id = calldocker_company());

GRANT SELECT, INSERT, UPDATE, DELETE ON country_queues TO calldocker_app;
