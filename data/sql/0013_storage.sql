-- SPDX-License-Identifier: GPL-3.0-or-later
-- Storage (docs/storage.md). Voicemails are sealed like recordings:
-- key_version is the company key that sealed the file; NULL marks one
-- stored before sealing, served as it is. stored_at is when the file
-- reached the blob store for good (with S3: when its upload succeeded);
-- NULL while it waits in the spool.

ALTER TABLE voicemails ADD COLUMN key_version int CHECK (key_version >= 1);
ALTER TABLE voicemails ADD COLUMN stored_at timestamptz;
ALTER TABLE recordings ADD COLUMN stored_at timestamptz;
GRANT UPDATE (stored_at) ON voicemails TO calldocker_app;
