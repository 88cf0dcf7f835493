-- Server schema 5 (issue 11): each change-log entry's link, a running hash over the log up to
-- it (`sanjin_core::protocol::log_link`); a device's cursor carries 20 bits of it. Entries
-- logged before have none (NULL) and stand for themselves, as their cursors always did.
ALTER TABLE change_log ADD COLUMN link INTEGER;
