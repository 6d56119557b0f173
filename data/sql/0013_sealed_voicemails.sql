-- SPDX-License-Identifier: GPL-3.0-or-later
-- Voicemails are sealed like recordings (docs/storage.md): key_version is
-- the company key that sealed the file. NULL marks a voicemail stored
-- before sealing, served as it is.

ALTER TABLE voicemails ADD COLUMN key_version int CHECK (key_version >= 1);
